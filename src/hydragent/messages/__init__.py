"""Chat message types: what every model returns and every agent keeps.

The types mirror smolagents' names, fields and positional order so that hydragent models can
drive smolagents agents, and so that users porting code find what they expect. On top of
smolagents they carry the model's reasoning (`reasoning_content`, kept apart from `content`)
and the reasoning and cached token counts. The submodules prepare messages for a backend
(`prepare`), turn image parts into each provider's form (`images`) and split `<think>`
reasoning out of a local model's text (`reasoning`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from enum import Enum
from typing import Any

__all__ = [
    "ChatMessage",
    "ChatMessageStreamDelta",
    "ChatMessageToolCall",
    "ChatMessageToolCallFunction",
    "ChatMessageToolCallStreamDelta",
    "MessageRole",
    "TokenUsage",
    "agglomerate_stream_deltas",
    "content_to_text",
]


class MessageRole(str, Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL_CALL = "tool-call"
    TOOL_RESPONSE = "tool-response"

    @classmethod
    def roles(cls) -> list[str]:
        return [role.value for role in cls]

    @classmethod
    def parse(cls, role: Any) -> MessageRole:
        """Accept enum members and their string values; reject anything else clearly."""
        if isinstance(role, MessageRole):
            return role
        value = getattr(role, "value", role)
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown message role {value!r}; valid roles: {', '.join(cls.roles())}"
            ) from None

    def __str__(self) -> str:
        return self.value


@dataclass
class TokenUsage:
    """Tokens of one call or a sum of calls; zeros when the server reports none.

    `reasoning_tokens` (thinking) are part of `output_tokens` and `cached_tokens` (prompt
    cache hits) part of `input_tokens`, as the providers count them, so `total_tokens` stays
    input + output. `total_tokens` is a field, as in smolagents, so `asdict` carries it.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = field(init=False, default=0)
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    def __post_init__(self) -> None:
        self.total_tokens = self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )

    def dict(self) -> dict[str, int]:
        """The three totals, plus reasoning and cached tokens when there are any."""
        data = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens:
            data["reasoning_tokens"] = self.reasoning_tokens
        if self.cached_tokens:
            data["cached_tokens"] = self.cached_tokens
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TokenUsage:
        """Read `dict()`'s output back (a recorded `total_tokens` is recomputed, not trusted)."""
        data = data or {}
        return cls(
            **{
                key: int(data.get(key) or 0)
                for key in ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens")
            }
        )


@dataclass
class ChatMessageToolCallFunction:
    """smolagents' order: `ChatMessageToolCallFunction(arguments, name, description)`."""

    arguments: Any
    name: str
    description: str | None = None


@dataclass
class ChatMessageToolCall:
    function: ChatMessageToolCallFunction
    id: str
    type: str = "function"

    def __str__(self) -> str:
        return (
            f"Call: {self.id}: Calling {self.function.name} "
            f"with arguments: {self.function.arguments}"
        )

    def dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.function.name, "arguments": self.function.arguments},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatMessageToolCall:
        """Read the OpenAI/smolagents shape `{id, type, function: {name, arguments}}`, or a
        flat `{name, arguments}`."""
        function = data.get("function", data)
        return cls(
            function=ChatMessageToolCallFunction(
                name=function["name"],
                arguments=function.get("arguments", {}),
                description=function.get("description"),
            ),
            id=str(data.get("id") or ""),
            type=data.get("type") or "function",
        )


def _coerce_tool_call(call: Any) -> ChatMessageToolCall:
    """A ChatMessageToolCall from a dict or a client library's object (as smolagents does)."""
    if isinstance(call, ChatMessageToolCall):
        return call
    if isinstance(call, Mapping):
        return ChatMessageToolCall.from_dict(call)
    for method in ("model_dump", "dict"):  # pydantic objects of openai, litellm, hf clients
        if callable(getattr(call, method, None)):
            return ChatMessageToolCall.from_dict(getattr(call, method)())
    if is_dataclass(call) and not isinstance(call, type):  # e.g. smolagents' own class
        return ChatMessageToolCall.from_dict(asdict(call))
    raise TypeError(
        f"a tool call must be a ChatMessageToolCall or a dict, got {type(call).__name__}"
    )


@dataclass
class ChatMessage:
    """One message; `token_usage` is always a TokenUsage (zeros when unreported).

    `reasoning_content` holds the model's reasoning (thinking) when it returned some; it is
    never part of `content`, so answers and scorers see only the reply itself.
    """

    role: MessageRole | str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ChatMessageToolCall] | None = None
    raw: Any | None = None
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    metadata: dict[str, Any] = field(default_factory=dict)
    reasoning_content: str | None = None

    def __post_init__(self) -> None:
        if self.token_usage is None:
            self.token_usage = TokenUsage()
        if self.tool_calls is not None:
            self.tool_calls = [_coerce_tool_call(call) for call in self.tool_calls]

    def dict(self) -> dict[str, Any]:
        """A JSON-safe view; `raw` is left out because provider objects rarely serialise."""
        data = {
            "role": str(getattr(self.role, "value", self.role)),
            "content": self.content,
            "tool_calls": [call.dict() for call in self.tool_calls] if self.tool_calls else None,
            "token_usage": self.token_usage.dict(),
        }
        if self.reasoning_content is not None:
            data["reasoning_content"] = self.reasoning_content
        if self.metadata:
            data["metadata"] = self.metadata
        return data

    def model_dump_json(self) -> str:
        return json.dumps(self.dict(), default=str)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        raw: Any | None = None,
        token_usage: TokenUsage | Mapping[str, Any] | None = None,
    ) -> ChatMessage:
        """smolagents' signature; `token_usage` given here wins over the one in `data`."""
        usage = token_usage if token_usage is not None else data.get("token_usage")
        return cls(
            role=MessageRole.parse(data["role"]),
            content=data.get("content"),
            tool_calls=list(data.get("tool_calls") or []) or None,
            raw=raw,
            token_usage=usage if isinstance(usage, TokenUsage) else TokenUsage.from_dict(usage),
            metadata=dict(data.get("metadata") or {}),
            reasoning_content=data.get("reasoning_content"),
        )

    def render_as_markdown(self) -> str:
        text = content_to_text(self.content)
        if self.tool_calls:
            text += "\n" + "\n".join(
                json.dumps(
                    {"tool": call.function.name, "arguments": call.function.arguments}, default=str
                )
                for call in self.tool_calls
            )
        return text


@dataclass
class ChatMessageToolCallStreamDelta:
    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: ChatMessageToolCallFunction | None = None


@dataclass
class ChatMessageStreamDelta:
    content: str | None = None
    tool_calls: list[ChatMessageToolCallStreamDelta] | None = None
    token_usage: TokenUsage | None = None
    reasoning_content: str | None = None

    def dict(self) -> dict[str, Any]:
        return asdict(self)


def agglomerate_stream_deltas(
    deltas: Iterable[ChatMessageStreamDelta], role: MessageRole = MessageRole.ASSISTANT
) -> ChatMessage:
    """Merge streamed deltas: text and reasoning concatenate, tool-call fragments join by
    index, usage sums."""
    text_parts: list[str] = []
    reasoning_parts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage = TokenUsage()
    for delta in deltas:
        if delta.content:
            text_parts.append(delta.content)
        if delta.reasoning_content:
            reasoning_parts.append(delta.reasoning_content)
        if delta.token_usage:
            usage = usage + delta.token_usage
        for fragment in delta.tool_calls or []:
            index = fragment.index if fragment.index is not None else len(calls)
            call = calls.setdefault(index, {"id": "", "type": "function", "name": "", "args": ""})
            call["id"] = fragment.id or call["id"]
            call["type"] = fragment.type or call["type"]
            if fragment.function is not None:
                call["name"] += fragment.function.name or ""
                arguments = fragment.function.arguments
                if arguments is not None:
                    call["args"] += (
                        arguments if isinstance(arguments, str) else json.dumps(arguments)
                    )
    tool_calls = [
        ChatMessageToolCall(
            function=ChatMessageToolCallFunction(name=call["name"], arguments=call["args"]),
            id=call["id"],
            type=call["type"],
        )
        for _, call in sorted(calls.items())
    ]
    return ChatMessage(
        role=role,
        content="".join(text_parts) if text_parts or not tool_calls else None,
        tool_calls=tool_calls or None,
        token_usage=usage,
        reasoning_content="".join(reasoning_parts) if reasoning_parts else None,
    )


def content_to_text(content: Any) -> str:
    """The text of string or list content; images contribute nothing."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
