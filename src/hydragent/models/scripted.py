"""ScriptedModel: a deterministic offline backend for tests, demos and dry runs of a pipeline."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import jsonschema

from hydragent.generation import GenerationConfig
from hydragent.grammar import Grammar
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    MessageRole,
    TokenUsage,
    content_to_text,
)
from hydragent.models.base import Model, ModelRequest
from hydragent.models.spec import Applied, BackendSpec, declare
from hydragent.models.text import trim_at_stop

Response = str | Mapping[str, Any]


class ScriptedModelExhausted(RuntimeError):
    """Raised when `exhausted="error"` and every scripted response has been used."""


class ScriptedModel(Model):
    """Returns scripted responses in order and records every call.

    Responses come from `responses` (a list) or `responses_file` (JSONL, one response per line,
    or a JSON list), never both: a file is the whole list, so no default reply can sit in front
    of its lines and shift every answer by one sample. Or they come from `responder` (a
    callable taking the prepared messages). `match` maps a substring of the last user message
    to a response, which suits concurrent runs where call order is not fixed; `fallback`
    answers what neither `match` nor a response list covers. A response is a string, or a
    dict with `content` and optional `tool_calls` (a list of `{name, arguments}`). A grammar
    is not enforced by sampling here: a scripted response that violates it is an error, so
    recipes behave as on a real backend.
    """

    supported_grammars: ClassVar[frozenset[str]] = frozenset(
        {"json_object", "json_schema", "regex", "choice"}
    )
    native_tools: ClassVar[bool] = True  # scripted tool calls come back as tool calls

    def __init__(
        self,
        responses: list[Response] | None = None,
        responses_file: str | None = None,
        responder: Callable[[list[dict[str, Any]]], Response] | None = None,
        match: Mapping[str, Response] | None = None,
        fallback: Response | None = None,
        exhausted: Literal["cycle", "error"] = "cycle",
        model_id: str = "scripted",
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id=model_id, **kwargs)
        if exhausted not in ("cycle", "error"):
            raise ValueError(f"exhausted must be 'cycle' or 'error', got {exhausted!r}")
        if responses and responses_file:
            raise ValueError(
                "model.responses and model.responses_file are both set; a file is the whole "
                "list: set model.responses=null (or drop responses_file)"
            )
        self.responses = _read_responses(Path(responses_file)) if responses_file else []
        self.responses += list(responses or [])
        self.responses_file = responses_file
        self.responder = responder
        self.match = dict(match or {})
        self.fallback = fallback
        if not (self.responses or self.responder or self.match or fallback is not None):
            raise ValueError(
                "ScriptedModel needs responses, responses_file, responder, match or fallback"
            )
        self.exhausted = exhausted
        self.calls: list[dict[str, Any]] = []
        self._position = 0
        self._lock = threading.Lock()

    def request(self, req: ModelRequest) -> ChatMessage:
        response = self._next_response(req.messages)
        with self._lock:
            self.calls.append(
                {
                    "messages": req.messages,
                    "stop_sequences": req.stop_sequences,
                    "tools": [getattr(t, "name", t) for t in req.tools or []],
                    "grammar": req.grammar.model_dump() if req.grammar else None,
                    "kwargs": {**req.generation, **self.settings(req)},
                }
            )
        message = _to_message(response, len(self.calls))
        message.content = trim_at_stop(message.content, req.stop_sequences)
        if req.grammar is not None:
            try:
                _check_grammar(message.content or "", req.grammar)
            except ValueError as error:
                error.raw_reply = message.content  # type: ignore[attr-defined]  # the record keeps it
                raise
        prompt_text = " ".join(content_to_text(m["content"]) for m in req.messages)
        message.token_usage = TokenUsage(
            input_tokens=len(prompt_text.split()),
            output_tokens=len((message.content or "").split()) + len(message.tool_calls or []),
        )
        return message

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta, None, None]:
        """Yields the scripted answer word by word, then the usage, like a streaming server."""
        message = self.request(req)
        words = (message.content or "").split(" ")
        for i, word in enumerate(words):
            yield ChatMessageStreamDelta(content=word if i == 0 else " " + word)
        yield ChatMessageStreamDelta(token_usage=message.token_usage)

    def grammar_misfit(self, grammar: Grammar) -> str | None:
        """Why no scripted reply fits `grammar` (then every sample would fail on it), or
        None when one does, or a responder decides the replies."""
        if self.responder is not None:
            return None
        replies = [*self.responses, *self.match.values()]
        replies += [self.fallback] if self.fallback is not None else []
        reasons = []
        for reply in replies:
            text = reply.get("content") if isinstance(reply, Mapping) else reply
            try:
                _check_grammar(str(text or ""), grammar)
            except ValueError as error:
                reasons.append(f"{str(text)[:40]!r}: {error}")
            else:
                return None
        return reasons[0] if reasons else None

    def _next_response(self, prepared: list[dict[str, Any]]) -> Response:
        if self.responder is not None:
            return self.responder(prepared)
        last_user = next(
            (content_to_text(m["content"]) for m in reversed(prepared) if m["role"] == "user"), ""
        )
        for needle, response in self.match.items():
            if needle in last_user:
                return response
        with self._lock:
            if not self.responses and self.fallback is not None:
                return self.fallback
            if not self.responses:
                raise ScriptedModelExhausted(
                    f"no scripted response matches the last user message {last_user[:80]!r}"
                )
            if self._position >= len(self.responses):
                if self.exhausted == "error":
                    raise ScriptedModelExhausted(
                        f"all {len(self.responses)} scripted responses were used "
                        "(set exhausted=cycle to start over)"
                    )
                self._position = 0
            response = self.responses[self._position]
            self._position += 1
        return response


def _read_responses(path: Path) -> list[Response]:
    """A JSON list, or one response per line (the shared reader, hydragent.textfile, names
    the file and line of anything it cannot read)."""
    from hydragent.textfile import first_char, json_document, json_lines

    if not path.is_file():
        raise ValueError(f"responses_file not found: {path}")
    if first_char(path) == "[":
        return list(json_document(path))
    return [value for _, value in json_lines(path, one="response (a JSON string or object)")]


def _to_message(response: Response, call_number: int) -> ChatMessage:
    if isinstance(response, str):
        return ChatMessage(role=MessageRole.ASSISTANT, content=response)
    if not isinstance(response, Mapping):
        raise TypeError(f"a scripted response must be a string or a dict, got {type(response)}")
    tool_calls = [
        ChatMessageToolCall(
            id=str(call.get("id") or f"call_{call_number}_{i}"),
            function=ChatMessageToolCallFunction(
                name=call["name"], arguments=call.get("arguments", {})
            ),
        )
        for i, call in enumerate(response.get("tool_calls") or [])
    ]
    return ChatMessage(
        role=MessageRole.ASSISTANT, content=response.get("content"), tool_calls=tool_calls or None
    )


def _check_grammar(text: str, grammar: Grammar) -> None:
    import re

    if grammar.type in ("json_object", "json_schema"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"scripted response violates grammar={grammar.type}: {error}"
            ) from None
        if grammar.type == "json_schema":
            try:
                jsonschema.validate(value, grammar.schema or {})
            except jsonschema.ValidationError as error:
                raise ValueError(
                    f"scripted response violates grammar=json_schema: {error.message}"
                ) from None
    elif grammar.type == "regex" and not re.fullmatch(grammar.pattern or "", text):
        raise ValueError(f"scripted response violates grammar=regex {grammar.pattern!r}")
    elif grammar.type == "choice" and text not in (grammar.choices or []):
        raise ValueError(f"scripted response is not one of grammar.choices {grammar.choices}")


BACKEND = declare(
    BackendSpec(
        key="scripted",
        model=ScriptedModel,
        extra=None,
        generation={
            **dict.fromkeys(GenerationConfig.model_fields, Applied("scripted replies: none")),
            "stop": Applied("each reply is cut at the first stop sequence"),
        },
        grammars=frozenset({"json_object", "json_schema", "regex", "choice"}),
        native_tools=True,
        streaming=True,
        fixes={"scriptedmodelexhausted": "give more model.responses, or model.exhausted=cycle"},
    )
)
