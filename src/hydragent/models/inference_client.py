"""InferenceClientModel: Hugging Face inference providers, or a TGI/OpenAI-style server by URL.

Unlike smolagents, `response_format` is really sent, and `base_url` works together with
`model_id`: the client is built on the URL and the model id travels in the request body.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any, ClassVar

from hydragent.grammar import Grammar
from hydragent.messages import ChatMessage, ChatMessageStreamDelta
from hydragent.models.base import TOOL_ROLE_CONVERSIONS, ApiModel, supports_stop_parameter
from hydragent.models.openai import (
    chat_message_from_completion,
    missing_extra,
    openai_tools,
    parse_guard,
    server_errors_explained,
    stream_deltas_from_chunks,
    to_openai_messages,
)

#: providers whose chat completions enforce `response_format` (a base_url server is trusted).
STRUCTURED_OUTPUT_PROVIDERS = ("cerebras", "fireworks-ai")


class InferenceClientModel(ApiModel):
    """`huggingface_hub.InferenceClient` chat completions; `api_key` is an alias for `token`."""

    supported_grammars: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})
    default_role_conversions: ClassVar[dict[str, str] | None] = dict(TOOL_ROLE_CONVERSIONS)

    def __init__(
        self,
        model_id: str = "Qwen/Qwen3-Next-80B-A3B-Thinking",
        provider: str | None = None,
        token: str | None = None,
        timeout: int = 120,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        api_key: str | None = None,
        bill_to: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        if token is not None and api_key is not None:
            raise ValueError(
                "InferenceClientModel got both `token` and `api_key`; give only one "
                "(`api_key` is an alias for `token`)"
            )
        self.token = token if token is not None else api_key
        self.provider = provider
        self.timeout = timeout
        self.bill_to = bill_to
        self.base_url = base_url
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id, custom_role_conversions=custom_role_conversions, **kwargs
        )

    def create_client(self) -> Any:
        try:
            from huggingface_hub import InferenceClient
        except ImportError as error:
            raise missing_extra(type(self).__name__, "hf") from error
        target = (
            {"base_url": self.base_url}
            if self.base_url
            else {"model": self.model_id, "provider": self.provider}
        )
        return InferenceClient(
            **{
                **target,
                "token": self.token or os.environ.get("HF_TOKEN"),
                "timeout": self.timeout,
                "bill_to": self.bill_to,
                **self.client_kwargs,
            }
        )

    def _check_structured_output(self, grammar: Grammar | None) -> None:
        """Fail before any call when the provider would silently ignore the constraint."""
        if grammar is None or self.base_url or self.provider in STRUCTURED_OUTPUT_PROVIDERS:
            return
        raise ValueError(
            f"InferenceClientModel cannot enforce grammar={grammar.type} with provider="
            f"{self.provider or 'auto'}; providers that can: "
            f"{', '.join(STRUCTURED_OUTPUT_PROVIDERS)} (or a TGI/vLLM server via base_url)"
        )

    def _request(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None,
        response_format: dict[str, Any] | None,
        tools_to_call_from: list[Any] | None,
        grammar: Grammar | dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        resolved = self.resolve_grammar(grammar, response_format)
        self._check_structured_output(resolved)
        tools = openai_tools(tools_to_call_from)
        explicit = {
            "model": self.model_id if self.base_url else None,
            "messages": to_openai_messages(self.prepare(messages, images_as_urls=True)),
            "stop": stop_sequences if supports_stop_parameter(self.model_id) else None,
            "tools": tools,
            "tool_choice": "required" if tools else None,
            "response_format": resolved.to_response_format() if resolved else None,
        }
        return self.completion_kwargs(explicit, kwargs)

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        request = self._request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        with server_errors_explained(type(self).__name__):
            response = self.call_api(parse_guard, self.client.chat_completion, **request)
        return chat_message_from_completion(response, None if "stop" in request else stop_sequences)

    def generate_stream(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Generator[ChatMessageStreamDelta]:
        request = self._request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        request.update(stream=True, stream_options={"include_usage": True})
        with server_errors_explained(type(self).__name__):
            stream = self.call_api(self.client.chat_completion, **request)
        yield from stream_deltas_from_chunks(stream)


HfApiModel = InferenceClientModel
