"""Chat message types and the preparation every backend applies before sending.

The types mirror smolagents' names and fields so that hydragent models can drive
smolagents agents, and so that users porting code find what they expect.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
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
    "prepare_messages",
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
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    def dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class ChatMessageToolCallFunction:
    name: str
    arguments: Any
    description: str | None = None


@dataclass
class ChatMessageToolCall:
    function: ChatMessageToolCallFunction
    id: str
    type: str = "function"

    def dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.function.name, "arguments": self.function.arguments},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatMessageToolCall:
        function = data.get("function", data)
        return cls(
            function=ChatMessageToolCallFunction(
                name=function["name"],
                arguments=function.get("arguments", {}),
                description=function.get("description"),
            ),
            id=str(data.get("id") or ""),
            type=data.get("type", "function"),
        )


@dataclass
class ChatMessage:
    """One message; `token_usage` is always a TokenUsage (zeros when unreported)."""

    role: MessageRole | str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ChatMessageToolCall] | None = None
    raw: Any | None = None
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.token_usage is None:
            self.token_usage = TokenUsage()

    def dict(self) -> dict[str, Any]:
        """A JSON-safe view; `raw` is left out because provider objects rarely serialise."""
        return {
            "role": str(getattr(self.role, "value", self.role)),
            "content": self.content,
            "tool_calls": [call.dict() for call in self.tool_calls] if self.tool_calls else None,
            "token_usage": self.token_usage.dict(),
            **({"metadata": self.metadata} if self.metadata else {}),
        }

    def model_dump_json(self) -> str:
        return json.dumps(self.dict(), default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], raw: Any | None = None) -> ChatMessage:
        usage = data.get("token_usage") or {}
        return cls(
            role=MessageRole.parse(data["role"]),
            content=data.get("content"),
            tool_calls=[ChatMessageToolCall.from_dict(c) for c in data.get("tool_calls") or []]
            or None,
            raw=raw,
            token_usage=TokenUsage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
            metadata=dict(data.get("metadata") or {}),
        )

    def render_as_markdown(self) -> str:
        text = content_to_text(self.content)
        if self.tool_calls:
            text += "\n" + "\n".join(
                json.dumps(call.dict(), default=str) for call in self.tool_calls
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

    def dict(self) -> dict[str, Any]:
        return asdict(self)


def agglomerate_stream_deltas(
    deltas: Iterable[ChatMessageStreamDelta], role: MessageRole = MessageRole.ASSISTANT
) -> ChatMessage:
    """Merge streamed deltas: text concatenates, tool-call fragments join by index, usage sums."""
    text_parts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage = TokenUsage()
    for delta in deltas:
        if delta.content:
            text_parts.append(delta.content)
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
    )


# --- message preparation -------------------------------------------------------------------


def content_to_text(content: Any) -> str:
    """The text of string or list content; images contribute nothing."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


def _as_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        elif isinstance(part, Mapping):
            parts.append(dict(part))
        else:
            raise ValueError(f"message content parts must be dicts or strings, got {type(part)}")
    return parts


def _message_fields(message: Any) -> dict[str, Any]:
    """Read role/content/tool calls from a dict or any object with those attributes."""
    if isinstance(message, Mapping):
        fields = dict(message)
    elif hasattr(message, "role") and hasattr(message, "content"):
        fields = {
            "role": message.role,
            "content": message.content,
            "tool_calls": getattr(message, "tool_calls", None),
            "tool_call_id": getattr(message, "tool_call_id", None),
        }
    else:
        raise ValueError(
            f"a message must be a dict or have `role` and `content` attributes, got {type(message)}"
        )
    if "role" not in fields:
        raise ValueError(f"message has no role; valid roles: {', '.join(MessageRole.roles())}")
    fields["role"] = MessageRole.parse(fields["role"])
    calls = fields.get("tool_calls")
    if calls:
        fields["tool_calls"] = [
            call if isinstance(call, ChatMessageToolCall) else ChatMessageToolCall.from_dict(call)
            for call in calls
        ]
    else:
        fields.pop("tool_calls", None)
    if not fields.get("tool_call_id"):
        fields.pop("tool_call_id", None)
    return fields


def _encode_image(image: Any) -> str:
    """Base64 of an image given as bytes, a path, a PIL image, or already-base64 text."""
    if isinstance(image, bytes | bytearray):
        return base64.b64encode(image).decode()
    if isinstance(image, str | os.PathLike) and os.path.isfile(image):
        with open(image, "rb") as handle:
            return base64.b64encode(handle.read()).decode()
    if isinstance(image, str):
        return image
    if hasattr(image, "save"):  # PIL.Image without importing PIL
        import io

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()
    raise ValueError(f"cannot encode image of type {type(image).__name__}")


def _convert_image_part(part: dict[str, Any], as_url: bool) -> dict[str, Any]:
    if part.get("type") == "image_url":
        return part
    image = part.get("image")
    if isinstance(image, str) and image.startswith(("data:", "http://", "https://")):
        url = image
    else:
        url = f"data:image/png;base64,{_encode_image(image)}"
    if as_url:
        return {"type": "image_url", "image_url": {"url": url}}
    encoded = url.split(",", 1)[1] if url.startswith("data:") else url
    return {"type": "image", "image": encoded}


def prepare_messages(
    messages: Iterable[Any],
    role_conversions: Mapping[str, str] | None = None,
    flatten_as_text: bool = False,
    images_as_urls: bool = False,
) -> list[dict[str, Any]]:
    """Normalise messages for a backend: convert roles, merge same-role runs, flatten, encode.

    The output is a list of plain dicts with string roles. Content is a list of parts, or a
    string when `flatten_as_text` is set. Messages that carry tool calls or answer one are
    never merged, because providers pair them by id.
    """
    conversions = {
        MessageRole.parse(k): MessageRole.parse(v) for k, v in (role_conversions or {}).items()
    }
    prepared: list[dict[str, Any]] = []
    for message in messages:
        fields = _message_fields(message)
        role = conversions.get(fields["role"], fields["role"])
        parts = [
            _convert_image_part(p, images_as_urls) if p.get("type") in ("image", "image_url") else p
            for p in _as_parts(fields.get("content"))
        ]
        mergeable = "tool_calls" not in fields and "tool_call_id" not in fields
        previous = prepared[-1] if prepared else None
        if previous is not None and previous["role"] == role and mergeable and previous["_merge"]:
            last = previous["content"][-1] if previous["content"] else None
            for part in parts:
                if part.get("type") == "text" and last is not None and last.get("type") == "text":
                    last["text"] = f"{last['text']}\n{part['text']}"
                else:
                    previous["content"].append(part)
                    last = part
            continue
        entry: dict[str, Any] = {"role": role, "content": parts, "_merge": mergeable}
        for key in ("tool_calls", "tool_call_id", "name"):
            if fields.get(key):
                entry[key] = fields[key]
        prepared.append(entry)

    for entry in prepared:
        entry.pop("_merge")
        entry["role"] = entry["role"].value
        if flatten_as_text:
            if any(part.get("type") != "text" for part in entry["content"]):
                raise ValueError(
                    "flatten_messages_as_text cannot carry images; use messages=structured"
                )
            entry["content"] = content_to_text(entry["content"])
    return prepared
