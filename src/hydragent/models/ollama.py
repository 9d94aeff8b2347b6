"""OllamaModel: a model served by Ollama, through its native chat API (`POST /api/chat`).

Ollama also serves an OpenAI-compatible endpoint (model=openai works on it), but only its
native API takes the model's own options (`num_ctx`, `repeat_penalty`, `mirostat`, ...), a
JSON schema as `format`, `keep_alive`, and `think`, with the thinking returned apart from the
answer. It needs no client library: the standard library's HTTP client sends the JSON, so it
has no extra to install. This module and conf/model/ollama.yaml are all of it (see
docs/architecture.md, "Adding a backend").
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from typing import Any, ClassVar

from hydragent.generation import GenerationConfig
from hydragent.grammar import Grammar
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
    content_to_text,
)
from hydragent.models.api import ApiModel
from hydragent.models.base import TOOL_ROLE_CONVERSIONS, ModelRequest
from hydragent.models.errors import IncompleteStreamError, MalformedResponseError
from hydragent.models.spec import Applied, BackendSpec, Field, apply_generation, declare
from hydragent.models.text import trim_at_stop

#: request keys that sit beside `options` in the body; every other setting is a model option.
BODY_KEYS = ("keep_alive", "think", "format")


class OllamaError(RuntimeError):
    """Ollama answered with an error status; `status_code` lets the retry policy judge it."""

    def __init__(self, status_code: int, message: str, headers: Any = None) -> None:
        super().__init__(f"Ollama answered {status_code}: {message}")
        self.status_code = status_code
        self.headers = headers


class OllamaClient:
    """`POST {api_base}/api/chat`, whole or streamed (one JSON object per line)."""

    def __init__(self, api_base: str, timeout: float) -> None:
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._open(body) as response:
            try:
                return json.loads(response.read())
            except json.JSONDecodeError as error:
                raise MalformedResponseError(f"Ollama's reply is not JSON ({error.msg})") from error

    def chat_stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        response = self._open(body)

        def lines() -> Iterator[dict[str, Any]]:
            with response:
                for line in response:
                    if line.strip():
                        yield json.loads(line)

        return lines()

    def _open(self, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.api_base}/api/chat",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            with contextlib.suppress(json.JSONDecodeError, AttributeError):
                text = json.loads(text).get("error", text)
            raise OllamaError(error.code, text, error.headers) from None
        except urllib.error.URLError as error:  # refused, unreachable: retried, then named
            raise ConnectionError(
                f"no Ollama server answered at {self.api_base}: connection error ({error.reason})"
            ) from None


class OllamaModel(ApiModel):
    """A model Ollama serves. `options` are Ollama's model options (`num_ctx`, ...); extra
    keywords go there too, except `keep_alive`, `think` and `format`, which are request fields.
    `generation.reasoning_effort` becomes `think` (minimal: off)."""

    wire_roles: ClassVar[dict[str, str] | None] = dict(TOOL_ROLE_CONVERSIONS)
    takes_seed: ClassVar[bool] = True

    def __init__(
        self,
        model_id: str,
        api_base: str = "http://127.0.0.1:11434",
        options: dict[str, Any] | None = None,
        timeout: float = 600.0,
        **kwargs: Any,
    ) -> None:
        self.api_base = api_base
        self.options = dict(options or {})
        self.timeout = timeout
        super().__init__(model_id=model_id, **kwargs)
        self.build_client()

    def create_client(self) -> OllamaClient:
        return OllamaClient(self.api_base, self.timeout)

    def wire_request(self, req: ModelRequest) -> dict[str, Any]:
        """The /api/chat body: settings beside `options` or in them, then the generation node
        where the declaration puts it (a setting already given wins)."""
        settings = self.settings(req)
        settings.pop("tool_choice", None)  # Ollama lets the model choose
        body: dict[str, Any] = {k: settings.pop(k) for k in BODY_KEYS if k in settings}
        options = {**self.options, **settings}
        if req.stop_sequences:
            options["stop"] = list(req.stop_sequences)
        body.update(model=self.model_id, messages=ollama_messages(req.messages), stream=False)
        if options:
            body["options"] = options
        tools = req.tool_schemas()
        if tools:
            body["tools"] = tools
        if req.grammar is not None:
            body["format"] = grammar_format(req.grammar)
        return apply_generation(body, req.generation, self.generation_names() or {})

    def request(self, req: ModelRequest) -> ChatMessage:
        reply = self.call_api(self.client.chat, self.wire_request(req))
        message = reply.get("message")
        if not isinstance(message, dict):
            raise MalformedResponseError(f"Ollama's reply has no message: {str(reply)[:300]}")
        calls = [
            ChatMessageToolCall(
                id=f"call_{i}",
                function=ChatMessageToolCallFunction(
                    name=call["function"]["name"], arguments=call["function"].get("arguments", {})
                ),
            )
            for i, call in enumerate(message.get("tool_calls") or [])
        ]
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=trim_at_stop(message.get("content") or "", req.stop_sequences),
            tool_calls=calls or None,
            raw=reply,
            token_usage=usage_of(reply),
            reasoning_content=message.get("thinking") or None,
        )

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta]:
        """Deltas as Ollama writes them, then the usage; only opening the stream is retried."""
        body = {**self.wire_request(req), "stream": True}
        done = False
        for chunk in self.call_api(self.client.chat_stream, body):
            message = chunk.get("message") or {}
            calls = [
                ChatMessageToolCallStreamDelta(
                    index=i,
                    id=f"call_{i}",
                    type="function",
                    function=ChatMessageToolCallFunction(
                        name=call["function"]["name"],
                        arguments=json.dumps(call["function"].get("arguments", {})),
                    ),
                )
                for i, call in enumerate(message.get("tool_calls") or [])
            ]
            if message.get("content") or message.get("thinking") or calls:
                yield ChatMessageStreamDelta(
                    content=message.get("content") or None,
                    reasoning_content=message.get("thinking") or None,
                    tool_calls=calls or None,
                )
            if chunk.get("done"):
                done = True
                yield ChatMessageStreamDelta(content="", token_usage=usage_of(chunk))
        if not done:
            raise IncompleteStreamError("Ollama's stream ended before done: truncated response")


def ollama_messages(prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prepared messages as /api/chat takes them: text content, images as base64 beside it,
    tool calls with object arguments, tool results as `tool` turns."""
    wire = []
    for entry in prepared:
        parts = entry["content"] if isinstance(entry["content"], list) else None
        message: dict[str, Any] = {
            "role": entry["role"],
            "content": content_to_text(entry["content"]),
        }
        images = [p["image"] for p in parts or [] if p.get("type") == "image"]
        if images:
            message["images"] = images
        if entry.get("tool_calls"):
            message["role"] = MessageRole.ASSISTANT.value
            message["tool_calls"] = [
                {"function": {"name": c.function.name, "arguments": _arguments(c)}}
                for c in entry["tool_calls"]
            ]
        elif entry.get("tool_call_id"):
            message = {"role": "tool", "content": message["content"]}
            if entry.get("name"):
                message["tool_name"] = entry["name"]
        wire.append(message)
    return wire


def _arguments(call: ChatMessageToolCall) -> Any:
    arguments = call.function.arguments
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return {}
    return arguments


def grammar_format(grammar: Grammar) -> Any:
    """Ollama's `format`: "json", or the JSON schema the reply must follow."""
    return grammar.schema if grammar.type == "json_schema" else "json"


def usage_of(reply: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input_tokens=int(reply.get("prompt_eval_count") or 0),
        output_tokens=int(reply.get("eval_count") or 0),
    )


def think_level(effort: str) -> bool | str:
    """`reasoning_effort` as Ollama's `think`: off for minimal, else the level (gpt-oss reads
    low/medium/high; other thinking models take any level as on)."""
    return False if effort == "minimal" else effort


BACKEND = declare(
    BackendSpec(
        key="ollama",
        model=OllamaModel,
        extra=None,
        generation={
            **dict.fromkeys(GenerationConfig.model_fields),
            "max_tokens": "options.num_predict",
            "temperature": "options.temperature",
            "top_p": "options.top_p",
            "top_k": "options.top_k",
            "seed": "options.seed",
            "frequency_penalty": "options.frequency_penalty",
            "presence_penalty": "options.presence_penalty",
            "stop": Applied("options.stop, with the call's stop sequences"),
            "reasoning_effort": Field("think", think_level),
        },
        grammars=frozenset({"json_object", "json_schema"}),
        native_tools=True,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"retry"}),
        fixes={"no ollama server answered": "start it (ollama serve), or set model.api_base"},
    )
)
