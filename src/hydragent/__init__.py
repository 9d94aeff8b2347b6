"""hydragent: declarative, reproducible LLM agent experiments on Hydra.

Importing this package imports no backend library; each backend loads its client on use.
"""

from __future__ import annotations

from typing import Any

from hydragent import models as _models
from hydragent.grammar import Grammar
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    MessageRole,
    TokenUsage,
)
from hydragent.models.api import ApiModel
from hydragent.models.base import Model
from hydragent.models.compat import REMOVE_PARAMETER

__version__ = "0.1.0"

__all__ = [
    "REMOVE_PARAMETER",
    "AmazonBedrockModel",
    "AmazonBedrockServerModel",
    "ApiModel",
    "AzureOpenAIModel",
    "AzureOpenAIServerModel",
    "ChatMessage",
    "ChatMessageStreamDelta",
    "ChatMessageToolCall",
    "ChatMessageToolCallFunction",
    "Grammar",
    "HfApiModel",
    "InferenceClientModel",
    "LiteLLMModel",
    "LiteLLMRouterModel",
    "MLXModel",
    "MessageRole",
    "Model",
    "OpenAIModel",
    "OpenAIServerModel",
    "ScriptedModel",
    "TokenUsage",
    "TransformersModel",
    "VLLMModel",
]


def __getattr__(name: str) -> Any:
    return getattr(_models, name)
