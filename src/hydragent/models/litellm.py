"""LiteLLMModel: one interface to 100+ providers through `litellm.completion`.

LiteLLM's own retries are off (`num_retries=0`, `max_retries=0`) so that the `retry` policy is
the only one. `LITELLM_LOCAL_MODEL_COST_MAP=True` is set before the import so that importing
litellm never reaches the network.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator
from typing import Any, ClassVar

from hydragent.grammar import Grammar
from hydragent.messages import ChatMessage, ChatMessageStreamDelta
from hydragent.models.base import TOOL_ROLE_CONVERSIONS, ApiModel, supports_stop_parameter
from hydragent.models.openai import (
    chat_message_from_completion,
    missing_extra,
    openai_tools,
    server_errors_explained,
    stream_deltas_from_chunks,
    to_openai_messages,
)

#: smolagents' fallback when no model_id is given.
DEFAULT_MODEL_ID = "anthropic/claude-3-5-sonnet-20240620"
#: providers whose chat templates want each message's content as one string.
FLATTENING_PREFIXES = ("ollama", "groq", "cerebras")


def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as error:
        raise missing_extra("LiteLLMModel", "litellm") from error
    litellm.suppress_debug_info = True  # no "Give Feedback" banner on every failure
    return litellm


class LiteLLMModel(ApiModel):
    """`litellm.completion` with `api_base`/`api_key`; flattening defaults on for
    `ollama/`, `groq/` and `cerebras/` ids."""

    supported_grammars: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})
    default_role_conversions: ClassVar[dict[str, str] | None] = dict(TOOL_ROLE_CONVERSIONS)

    def __init__(
        self,
        model_id: str | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if not model_id:
            warnings.warn(
                f"LiteLLMModel without model_id uses {DEFAULT_MODEL_ID!r} (as smolagents does); "
                "pass model_id, e.g. 'openai/gpt-4o-mini'",
                FutureWarning,
                stacklevel=2,
            )
            model_id = DEFAULT_MODEL_ID
        self.api_base = api_base
        self.api_key = api_key
        if flatten_messages_as_text is None:
            flatten_messages_as_text = model_id.startswith(FLATTENING_PREFIXES)
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )

    def create_client(self) -> Any:
        return import_litellm()

    def completion_function(self) -> Any:
        return self.client.completion

    def build_request(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None,
        response_format: dict[str, Any] | None,
        tools_to_call_from: list[Any] | None,
        grammar: Grammar | dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        resolved = self.resolve_grammar(grammar, response_format)
        tools = openai_tools(tools_to_call_from)
        explicit = {
            "model": self.model_id,
            "messages": to_openai_messages(self.prepare(messages, images_as_urls=True)),
            "stop": stop_sequences if supports_stop_parameter(self.model_id) else None,
            "tools": tools,
            "tool_choice": "required" if tools else None,
            "response_format": resolved.to_response_format() if resolved else None,
            **self.connection_kwargs(),
        }
        return self.completion_kwargs(explicit, kwargs)

    def connection_kwargs(self) -> dict[str, Any]:
        """Endpoint and retry settings for one `litellm.completion` call."""
        return {
            "api_base": self.api_base,
            "api_key": self.api_key,
            "num_retries": 0,
            "max_retries": 0,
        }

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        request = self.build_request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        with server_errors_explained(type(self).__name__):
            response = self.call_api(self.completion_function(), **request)
        message = chat_message_from_completion(
            response, None if "stop" in request else stop_sequences
        )
        message.metadata.update(self.response_metadata(response))
        return message

    def response_metadata(self, response: Any) -> dict[str, Any]:
        return {}

    def generate_stream(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Generator[ChatMessageStreamDelta]:
        request = self.build_request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        request.update(stream=True, stream_options={"include_usage": True})
        with server_errors_explained(type(self).__name__):
            stream = self.call_api(self.completion_function(), **request)
        yield from stream_deltas_from_chunks(stream)
