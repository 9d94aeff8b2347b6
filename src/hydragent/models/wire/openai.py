"""The OpenAI chat-completions wire format: messages out, completions and stream chunks in.

Azure, vLLM-server, the HF InferenceClient, LiteLLM and the LiteLLM Router all speak these
shapes (as objects or dicts), so they share this module; it knows no backend class.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Mapping
from typing import Any

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
from hydragent.models.errors import IncompleteStreamError, MalformedResponseError
from hydragent.models.text import StopScanner, trim_at_stop


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from an SDK object or a plain dict (LiteLLM and HF mix both). Attributes
    come first: huggingface_hub's types are dicts whose items keep only the fields they
    declare, while their attributes also keep the rest (`reasoning_content`, usage details)."""
    if obj is None:
        return default
    if type(obj) is not dict:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return obj.get(name, default) if isinstance(obj, Mapping) else default


def to_openai_messages(prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prepared messages in the wire format: tool calls paired by id, no hydragent-only roles.

    A message carrying `tool_calls` is sent as an assistant turn with OpenAI tool calls, and
    one carrying `tool_call_id` as a `tool` turn, whatever the role conversion says: OpenAI
    rejects unpaired calls. Roles were converted once, by `Model.prepare`.
    """
    wire: list[dict[str, Any]] = []
    for entry in prepared:
        message: dict[str, Any] = {
            "role": entry["role"],
            "content": _wire_content(entry["content"]),
        }
        if entry.get("tool_calls"):
            message["role"] = MessageRole.ASSISTANT.value
            message["tool_calls"] = [_wire_tool_call(call) for call in entry["tool_calls"]]
        elif entry.get("tool_call_id"):
            message = {
                "role": "tool",
                "tool_call_id": entry["tool_call_id"],
                "content": content_to_text(entry["content"]),
            }
        wire.append(message)
    return wire


def _wire_content(content: Any) -> Any:
    """A lone text part goes as a plain string: the same message to the server, and the openai
    SDK's per-request transform walks every typed part, which made each call ~25% slower than
    the raw client (benchmarks/p2_overhead.py). Images and several parts stay a list."""
    if isinstance(content, list) and len(content) == 1:
        part = content[0]
        if isinstance(part, dict) and part.get("type") == "text" and set(part) == {"type", "text"}:
            return part["text"]
    return content


def _wire_tool_call(call: ChatMessageToolCall) -> dict[str, Any]:
    arguments = call.function.arguments
    return {
        "id": call.id,
        "type": "function",
        "function": {
            "name": call.function.name,
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def token_usage_from(usage: Any) -> TokenUsage:
    """TokenUsage from an OpenAI-style usage object or dict; zeros when the server sent none."""
    prompt = field_of(usage, "prompt_tokens") or field_of(usage, "input_tokens") or 0
    completion = field_of(usage, "completion_tokens") or field_of(usage, "output_tokens") or 0
    completion_details = field_of(usage, "completion_tokens_details")
    prompt_details = field_of(usage, "prompt_tokens_details")
    return TokenUsage(
        input_tokens=int(prompt),
        output_tokens=int(completion),
        reasoning_tokens=_count(field_of(completion_details, "reasoning_tokens")),
        cached_tokens=_count(field_of(prompt_details, "cached_tokens")),
    )


def _count(value: Any) -> int:
    """A token count when the server sent one (a number), else 0."""
    return int(value) if isinstance(value, int | float) else 0


def reasoning_of(message: Any) -> str | None:
    """The reasoning text of a message or delta: `reasoning_content` (DeepSeek, vLLM, LiteLLM)
    or `reasoning` (OpenRouter, Ollama, newer vLLM)."""
    text = field_of(message, "reasoning_content")
    if not isinstance(text, str):
        text = field_of(message, "reasoning")
    return text if isinstance(text, str) and text else None


def tool_calls_from(raw_calls: Iterable[Any] | None) -> list[ChatMessageToolCall] | None:
    calls = [
        ChatMessageToolCall(
            id=str(field_of(call, "id") or f"call_{index}"),
            type=field_of(call, "type") or "function",
            function=ChatMessageToolCallFunction(
                name=field_of(field_of(call, "function"), "name"),
                arguments=field_of(field_of(call, "function"), "arguments") or {},
            ),
        )
        for index, call in enumerate(raw_calls or [])
    ]
    return calls or None


def chat_message_from_completion(
    response: Any, stop_sequences: list[str] | None = None
) -> ChatMessage:
    """The first choice of a chat completion as a ChatMessage; `stop_sequences` are trimmed."""
    choices = field_of(response, "choices") or []
    if not choices:
        raise ValueError(f"server returned a completion with no choices: {str(response)[:300]}")
    message = field_of(choices[0], "message")
    content = field_of(message, "content")
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content=trim_at_stop(content, stop_sequences),
        tool_calls=tool_calls_from(field_of(message, "tool_calls")),
        raw=response,
        token_usage=token_usage_from(field_of(response, "usage")),
        reasoning_content=reasoning_of(message),
    )


def parse_guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call `fn`, turning a JSON decoding failure into an error that says what happened."""
    try:
        return fn(*args, **kwargs)
    except json.JSONDecodeError as error:
        raise MalformedResponseError(
            f"the server's response body is not valid JSON ({error.msg} at char {error.pos})"
        ) from error


def stream_deltas_from_chunks(
    chunks: Iterable[Any], stop_sequences: list[str] | None = None
) -> Generator[ChatMessageStreamDelta]:
    """ChatMessageStreamDeltas from OpenAI-style stream chunks; a cut-off stream is an error.

    `stop_sequences` are for models that reject `stop`: text is cut at the first one, even
    when it arrives split over chunks, and the rest of the stream is still read for its usage.
    """
    finished = False
    scanner = StopScanner(stop_sequences)
    for chunk in chunks:
        usage = field_of(chunk, "usage")
        if usage:
            yield ChatMessageStreamDelta(content="", token_usage=token_usage_from(usage))
        for choice in (field_of(chunk, "choices") or [])[:1]:
            finished = finished or bool(field_of(choice, "finish_reason"))
            delta = field_of(choice, "delta")
            content = field_of(delta, "content")
            if content and stop_sequences:
                content = scanner.feed(content)
            raw_calls = field_of(delta, "tool_calls")
            reasoning = reasoning_of(delta)
            if not content and not raw_calls and not reasoning:
                continue
            yield ChatMessageStreamDelta(
                content=content,
                reasoning_content=reasoning,
                tool_calls=[
                    ChatMessageToolCallStreamDelta(
                        index=field_of(call, "index"),
                        id=field_of(call, "id"),
                        type=field_of(call, "type"),
                        function=ChatMessageToolCallFunction(
                            name=field_of(field_of(call, "function"), "name") or "",
                            arguments=field_of(field_of(call, "function"), "arguments") or "",
                        ),
                    )
                    for call in raw_calls
                ]
                if raw_calls
                else None,
            )
    if not finished:
        raise IncompleteStreamError(
            "the server's stream ended before it finished (no finish_reason): truncated response"
        )
    tail = scanner.flush()
    if tail:
        yield ChatMessageStreamDelta(content=tail)
