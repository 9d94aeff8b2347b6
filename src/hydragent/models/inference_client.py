"""InferenceClientModel: Hugging Face inference providers, or a TGI/OpenAI-style server by URL.

Unlike smolagents, `response_format` is really sent, and `base_url` works together with
`model_id`: the client is built on the URL and the model id travels in the request body.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from hydragent.grammar import Grammar
from hydragent.models.base import TOOL_ROLE_CONVERSIONS
from hydragent.models.openai import (
    ChatCompletionsModel,
    missing_extra,
)

#: providers whose chat completions enforce `response_format` (a base_url server is trusted).
STRUCTURED_OUTPUT_PROVIDERS = ("cerebras", "fireworks-ai")


class InferenceClientModel(ChatCompletionsModel):
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

    def request_model_id(self) -> str | None:
        """A provider client is bound to its model; a base_url client takes it per request."""
        return self.model_id if self.base_url else None

    def grammar_request(self, grammar: Grammar) -> dict[str, Any]:
        self._check_structured_output(grammar)
        return super().grammar_request(grammar)

    def send(self, request: dict[str, Any]) -> Any:
        return self.client.chat_completion(**request)


HfApiModel = InferenceClientModel
