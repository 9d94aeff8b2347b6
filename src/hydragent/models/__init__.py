"""Model backends. Each lives in its own module and imports its client library lazily."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    get_clean_message_list,
)
from hydragent.models.base import (
    REMOVE_PARAMETER,
    ApiModel,
    Capabilities,
    Model,
    ModelRequest,
    RetryPolicy,
    dry_build,
    get_tool_call_from_text,
    get_tool_json_schema,
    parse_json_if_needed,
    remove_content_after_stop_sequences,
    supports_stop_parameter,
)

if TYPE_CHECKING:
    from hydragent.grammar import Grammar

# Config option name (conf/model/<name>.yaml) -> "module:Class".
BACKENDS: dict[str, str] = {
    "transformers": "hydragent.models.transformers:TransformersModel",
    "inference_client": "hydragent.models.inference_client:InferenceClientModel",
    "litellm": "hydragent.models.litellm:LiteLLMModel",
    "litellm_router": "hydragent.models.litellm_router:LiteLLMRouterModel",
    "openai": "hydragent.models.openai:OpenAIServerModel",
    "azure_openai": "hydragent.models.azure_openai:AzureOpenAIServerModel",
    "bedrock": "hydragent.models.bedrock:AmazonBedrockServerModel",
    "mlx": "hydragent.models.mlx:MLXModel",
    "vllm": "hydragent.models.vllm:VLLMModel",
    "vllm_server": "hydragent.models.vllm_server:VLLMServerModel",
    "scripted": "hydragent.models.scripted:ScriptedModel",
}

_CLASS_MODULES = {path.split(":")[1]: path.split(":")[0] for path in BACKENDS.values()}
_ALIASES = {
    "HfApiModel": "InferenceClientModel",
    "OpenAIModel": "OpenAIServerModel",
    "AzureOpenAIModel": "AzureOpenAIServerModel",
    "AmazonBedrockModel": "AmazonBedrockServerModel",
}

__all__ = [
    "BACKENDS",
    "REMOVE_PARAMETER",
    "AmazonBedrockModel",
    "AmazonBedrockServerModel",
    "ApiModel",
    "AzureOpenAIModel",
    "AzureOpenAIServerModel",
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


def backend_class(name: str) -> type[Model]:
    """The class behind a config option name such as `openai`."""
    try:
        module, _, attr = BACKENDS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), attr)


def _supported_grammars(name: str) -> frozenset[str]:
    """A backend's grammar types; empty when its module is missing (not installed or built)."""
    try:
        return backend_class(name).supported_grammars
    except ImportError:
        return frozenset()


def grammar_support_error(model_cls: type, grammar: Grammar) -> str:
    """The one-line error for a backend that cannot enforce `grammar`, naming those that can."""
    able = [name for name in BACKENDS if grammar.type in _supported_grammars(name)]
    return (
        f"grammar={grammar.type} cannot be enforced by {model_cls.__name__}; "
        f"backends that can: {', '.join(able) or 'none'}"
    )


def __getattr__(name: str) -> Any:
    """Import backend modules on first use, so `import hydragent` stays light."""
    target = _ALIASES.get(name, name)
    if target in _CLASS_MODULES:
        return getattr(importlib.import_module(_CLASS_MODULES[target]), target)
    raise AttributeError(f"module 'hydragent.models' has no attribute {name!r}")
