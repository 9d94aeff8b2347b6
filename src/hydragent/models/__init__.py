"""Model backends. Each lives in its own module, declares itself there (`BACKEND`, a
`BackendSpec`) and imports its client library lazily; registry.py finds them."""

from __future__ import annotations

import importlib
from typing import Any

from hydragent.generation import GenerationConfig
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
    agglomerate_stream_deltas,
)
from hydragent.messages.prepare import get_clean_message_list
from hydragent.models.api import ApiModel
from hydragent.models.base import Capabilities, Model, ModelRequest, dry_build
from hydragent.models.compat import REMOVE_PARAMETER
from hydragent.models.registry import backend_class, backends, defining_module
from hydragent.models.registry import grammar_support_error as grammar_support_error
from hydragent.models.retry import RetryPolicy
from hydragent.models.spec import BackendSpec
from hydragent.models.text import (
    get_tool_call_from_text,
    get_tool_json_schema,
    parse_json_if_needed,
    remove_content_after_stop_sequences,
    supports_stop_parameter,
)

__all__ = [
    "BACKENDS",
    "REMOVE_PARAMETER",
    "AmazonBedrockModel",
    "AmazonBedrockServerModel",
    "ApiModel",
    "AzureOpenAIModel",
    "AzureOpenAIServerModel",
    "BackendSpec",
    "Capabilities",
    "ChatMessage",
    "ChatMessageStreamDelta",
    "ChatMessageToolCall",
    "ChatMessageToolCallFunction",
    "ChatMessageToolCallStreamDelta",
    "GenerationConfig",
    "HfApiModel",
    "InferenceClientModel",
    "LiteLLMModel",
    "LiteLLMRouterModel",
    "MLXModel",
    "MessageRole",
    "Model",
    "ModelRequest",
    "OpenAIModel",
    "OpenAIServerModel",
    "RetryPolicy",
    "ScriptedModel",
    "TokenUsage",
    "TransformersModel",
    "VLLMModel",
    "agglomerate_stream_deltas",
    "backend_class",
    "dry_build",
    "get_clean_message_list",
    "get_tool_call_from_text",
    "get_tool_json_schema",
    "grammar_support_error",
    "parse_json_if_needed",
    "remove_content_after_stop_sequences",
    "supports_stop_parameter",
]


def __getattr__(name: str) -> Any:
    """Backend classes import their module on first use, so `import hydragent` stays light;
    `BACKENDS` (conf/model option -> "module:Class") is derived from the declarations."""
    if name == "BACKENDS":
        return {key: f"{s.model.__module__}:{s.model.__name__}" for key, s in backends().items()}
    module = defining_module(name) if name[:1].isupper() else None
    if module is not None:
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'hydragent.models' has no attribute {name!r}")
