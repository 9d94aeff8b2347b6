"""ChatCompletionsModel: the request path of every backend whose client speaks OpenAI chat
completions (openai, Azure, vLLM server, huggingface_hub, litellm, the LiteLLM Router), and
the generation mapping they share. The wire format itself is wire/openai.py.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, ClassVar

from hydragent.generation import GenerationConfig
from hydragent.grammar import Grammar
from hydragent.messages import ChatMessage, ChatMessageStreamDelta
from hydragent.models.api import ApiModel
from hydragent.models.base import TOOL_ROLE_CONVERSIONS, ModelRequest
from hydragent.models.spec import GenerationMap, apply_generation
from hydragent.models.wire.openai import (
    chat_message_from_completion,
    parse_guard,
    stream_deltas_from_chunks,
    to_openai_messages,
)

# OpenAI reasoning models: max_completion_tokens, reasoning_effort, no sampling settings.
_REASONING_MODEL = re.compile(r"^(o1|o3|o4|gpt-5)($|[-.])")

#: generation node -> chat-completions names (None: not sent).
CHAT_GENERATION_NAMES: dict[str, str | None] = {
    **dict.fromkeys(GenerationConfig.model_fields),
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
#: the same for OpenAI's reasoning models, which refuse the sampling settings.
REASONING_GENERATION_NAMES: dict[str, str | None] = {
    **dict.fromkeys(GenerationConfig.model_fields),
    "max_tokens": "max_completion_tokens",
    "seed": "seed",
    "reasoning_effort": "reasoning_effort",
}


def is_reasoning_model(model_id: str | None) -> bool:
    """OpenAI o-series and gpt-5 (with or without a provider prefix)."""
    return bool(model_id) and bool(_REASONING_MODEL.match(str(model_id).split("/")[-1]))


def chat_generation(model: Any) -> GenerationMap:
    """The chat-completions mapping of one instance: by its model id (reasoning models take
    other names), with `stop` only where the model accepts it (else it is cut client-side
    and validate names it)."""
    names = (
        REASONING_GENERATION_NAMES if is_reasoning_model(model.model_id) else CHAT_GENERATION_NAMES
    )
    return {**names, "stop": "stop" if model.supports_stop_parameter else None}


class ChatCompletionsModel(ApiModel):
    """The shape shared by backends whose client speaks OpenAI chat completions (openai,
    huggingface_hub, litellm): they differ in the call that sends the body (`send`), in a
    few body fields (`grammar_request`, `connection_kwargs`) and in their declared
    generation mapping (`chat_generation` is the common one)."""

    takes_seed: ClassVar[bool] = True  # OpenAI, vLLM, TGI and llama.cpp servers take `seed`
    wire_roles: ClassVar[dict[str, str] | None] = dict(TOOL_ROLE_CONVERSIONS)
    images_as_urls: ClassVar[bool] = True

    def send(self, body: dict[str, Any]) -> Any:
        """Send one chat-completions body (streaming when `body["stream"]` is set)."""
        raise NotImplementedError(f"{type(self).__name__} must implement send")

    def request_model_id(self) -> str | None:
        return self.model_id

    def grammar_request(self, grammar: Grammar) -> dict[str, Any]:
        """The body fields that enforce `grammar` on this server."""
        return {"response_format": grammar.to_response_format()}

    def connection_kwargs(self) -> dict[str, Any]:
        """Per-request endpoint settings, for clients that take them with each call."""
        return {}

    def response_metadata(self, response: Any) -> dict[str, Any]:
        """Facts about who answered (e.g. a router's deployment), kept on the message."""
        return {}

    def wire_request(self, req: ModelRequest) -> dict[str, Any]:
        """The chat-completions body of a request. `tool_choice` is "required" with tools
        unless the call says otherwise, left out when None or without tools (as smolagents)."""
        settings = self.settings(req)
        tool_choice = settings.pop("tool_choice", "required")
        body: dict[str, Any] = {
            "model": self.request_model_id(),
            "messages": to_openai_messages(req.messages),
        }
        if req.stop_sequences and self.supports_stop_parameter:
            body["stop"] = req.stop_sequences
        tools = req.tool_schemas()
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if req.grammar is not None:
            body.update(self.grammar_request(req.grammar))
        body.update({k: v for k, v in self.connection_kwargs().items() if v is not None})
        if "extra_body" in body and "extra_body" in settings:  # the call's fields win
            settings["extra_body"] = {**body["extra_body"], **settings["extra_body"]}
        body.update(settings)
        apply_generation(body, req.generation, self.generation_names() or {})
        return {k: v for k, v in body.items() if v is not None}

    def request(self, req: ModelRequest) -> ChatMessage:
        body = self.wire_request(req)
        response = self.call_api(parse_guard, self.send, body)
        message = chat_message_from_completion(
            response, None if "stop" in body else req.stop_sequences
        )
        message.metadata.update(self.response_metadata(response))
        return message

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta]:
        """Streams deltas, then the usage; only opening the stream is retried, not its body.
        The stream opens on the first `next()`, as a generator should."""
        body = self.wire_request(req)
        trim = None if "stop" in body else req.stop_sequences
        body.update(stream=True, stream_options={"include_usage": True})
        yield from stream_deltas_from_chunks(self.call_api(self.send, body), trim)
