"""Chat message types and the preparation every backend applies before sending.

The types mirror smolagents' names, fields and positional order so that hydragent models can
drive smolagents agents, and so that users porting code find what they expect. On top of
smolagents they carry the model's reasoning (`reasoning_content`, kept apart from `content`)
and the reasoning and cached token counts. The image helpers at the end turn an image part
into each provider's form (OpenAI data URLs, Bedrock image blocks, PIL for local processors).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
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
    "ReasoningSplitter",
    "TokenUsage",
    "agglomerate_stream_deltas",
    "bedrock_image_block",
    "get_clean_message_list",
    "image_bytes",
    "image_data_url",
    "load_pil_image",
    "openai_image_part",
    "prepare_messages",
    "split_reasoning",
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


# --- reasoning in local models' text ---------------------------------------------------------

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class ReasoningSplitter:
    """Splits streamed text into reasoning (`<think>…</think>`) and the answer after it.

    `feed` returns `(reasoning, content)` that are safe to emit: text that could still be the
    start of a tag, and whitespace at the edges of the reasoning, is held back. Reasoning is
    recognised when the text opens with `<think>`, or from the start when `thinking=True`
    (templates such as DeepSeek-R1's write `<think>` into the prompt, so the model's text
    begins inside the block). Only the first block is reasoning.
    """

    def __init__(
        self, thinking: bool = False, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE
    ) -> None:
        self.open_tag, self.close_tag = open_tag, close_tag
        self.saw_reasoning = thinking
        self._state = "thinking" if thinking else "start"
        self._pending = ""
        self._emitted = False  # some reasoning went out: its leading whitespace is gone
        self._strip_content = False  # drop the whitespace between </think> and the answer

    def feed(self, text: str) -> tuple[str, str]:
        self._pending += text
        reasoning = ""
        if self._state == "start":
            head = self._pending.lstrip()
            if head.startswith(self.open_tag):
                self._state, self.saw_reasoning = "thinking", True
                self._pending = head[len(self.open_tag) :]
            elif self.open_tag.startswith(head):  # only whitespace, or maybe a tag so far
                return "", ""
            else:
                self._state = "content"
        if self._state == "thinking":
            if not self._emitted:
                self._pending = self._pending.lstrip()
            cut = self._pending.find(self.close_tag)
            if cut == -1:
                # hold a possible tag start, and the whitespace before it (stripped if it ends)
                reasoning = self._pending[
                    : len(self._pending) - _overlap(self._pending, self.close_tag)
                ]
                reasoning = reasoning.rstrip()
                self._pending = self._pending[len(reasoning) :]
                self._emitted = self._emitted or bool(reasoning)
                return reasoning, ""
            reasoning = self._pending[:cut].rstrip()
            self._pending = self._pending[cut + len(self.close_tag) :]
            self._state, self._strip_content = "content", True
        if self._strip_content:
            self._pending = self._pending.lstrip()
            self._strip_content = not self._pending
        content, self._pending = self._pending, ""
        return reasoning, content

    def flush(self) -> tuple[str, str]:
        """What is left once the text has ended (an unclosed block counts as reasoning)."""
        pending, self._pending = self._pending, ""
        if self._state == "thinking":
            return pending.strip() if not self._emitted else pending.rstrip(), ""
        return "", pending


def split_reasoning(
    text: str, thinking: bool = False, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE
) -> tuple[str | None, str]:
    """`(reasoning, answer)` of a local model's whole reply; reasoning is None when there is
    none. A reply with a `</think>` but no opening tag is taken as begun inside the block
    (the template wrote `<think>`), as is any reply when `thinking=True`."""
    opens = text.lstrip().startswith(open_tag)
    thinking = thinking or (not opens and close_tag in text)
    splitter = ReasoningSplitter(thinking, open_tag, close_tag)
    reasoning, content = splitter.feed(text)
    tail_reasoning, tail_content = splitter.flush()
    if not splitter.saw_reasoning:
        return None, text
    return reasoning + tail_reasoning, content + tail_content


def _overlap(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


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
        fields["tool_calls"] = [_coerce_tool_call(call) for call in calls]
    else:
        fields.pop("tool_calls", None)
    if not fields.get("tool_call_id"):
        fields.pop("tool_call_id", None)
    return fields


# --- images --------------------------------------------------------------------------------

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def image_format(data: bytes) -> str:
    """png, jpeg, gif or webp, read from the bytes' signature (png when unknown)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((name for magic, name in _IMAGE_SIGNATURES if data.startswith(magic)), "png")


def _is_remote(image: Any) -> bool:
    return isinstance(image, str) and image.startswith(("http://", "https://"))


def image_bytes(image: Any) -> bytes:
    """The encoded bytes of an image given as bytes, a file path, a PIL image, a data URL or
    base64 text. Remote URLs are not fetched: a caller that can pass a URL on checks first."""
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if hasattr(image, "save"):  # a PIL.Image, without importing PIL
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    maybe_path = isinstance(image, os.PathLike) or (isinstance(image, str) and len(image) < 4096)
    if maybe_path and os.path.isfile(image):
        with open(image, "rb") as handle:
            return handle.read()
    if isinstance(image, str):
        if _is_remote(image):
            raise ValueError(
                f"this backend cannot fetch image URLs ({image[:80]}); pass the image's bytes, "
                "a file path or a PIL image instead"
            )
        encoded = image.split(",", 1)[1] if image.startswith("data:") else image
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(
                f"image text is neither a file, a URL, a data URL nor base64: {image[:80]!r}"
            ) from None
    raise ValueError(
        f"cannot read an image from {type(image).__name__}; "
        "valid: bytes, a path, a PIL image, a data URL or base64 text"
    )


def image_data_url(image: Any) -> str:
    """A URL for providers that take them: http(s) and data URLs as they are, anything else
    as a base64 data URL with its real media type."""
    if isinstance(image, str) and (_is_remote(image) or image.startswith("data:")):
        return image
    data = image_bytes(image)
    return f"data:image/{image_format(data)};base64,{base64.b64encode(data).decode()}"


def _image_of(part: Mapping[str, Any]) -> Any:
    """The image of an `image` part, or the URL of an `image_url` part."""
    if part.get("type") == "image_url":
        url = part["image_url"]
        return url["url"] if isinstance(url, Mapping) else url
    return part["image"]


def openai_image_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """An image part as OpenAI chat completions take it (`image_url` with a URL or data URL);
    an `image_url` part's `detail` is kept."""
    url: dict[str, Any] = {"url": image_data_url(_image_of(part))}
    if part.get("type") == "image_url" and isinstance(part["image_url"], Mapping):
        url.update({k: v for k, v in part["image_url"].items() if k != "url"})
    return {"type": "image_url", "image_url": url}


def bedrock_image_block(part: Mapping[str, Any]) -> dict[str, Any]:
    """An image part as a Bedrock Converse content block: raw bytes and their format.
    `s3://` URIs become an S3 location; http(s) URLs are refused (Converse cannot fetch them)."""
    image = _image_of(part)
    if isinstance(image, str) and image.startswith("s3://"):
        suffix = image.rsplit(".", 1)[-1].lower()
        fmt = {"jpg": "jpeg"}.get(suffix, suffix)
        return {"image": {"format": fmt, "source": {"s3Location": {"uri": image}}}}
    data = image_bytes(image)
    return {"image": {"format": image_format(data), "source": {"bytes": data}}}


def load_pil_image(image: Any) -> Any:
    """A PIL image from any image form (remote URLs through transformers' loader), for local
    processors."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if _is_remote(image):
        from transformers.image_utils import load_image

        return load_image(image)
    return Image.open(io.BytesIO(image_bytes(image)))


def _convert_image_part(part: dict[str, Any], as_url: bool) -> dict[str, Any]:
    """`image_url` parts with a URL, or `image` parts with base64 text (URLs kept as URLs)."""
    if as_url:
        return openai_image_part(part)
    image = _image_of(part)
    if isinstance(image, str) and _is_remote(image):
        return {"type": "image", "image": image}
    return {"type": "image", "image": base64.b64encode(image_bytes(image)).decode()}


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


def get_clean_message_list(
    message_list: Iterable[Any],
    role_conversions: Mapping[str, str] | None = None,
    convert_images_to_image_urls: bool = False,
    flatten_messages_as_text: bool = False,
) -> list[dict[str, Any]]:
    """smolagents' name and keywords for `prepare_messages`, for code written against it."""
    return prepare_messages(
        message_list,
        role_conversions=role_conversions,
        flatten_as_text=flatten_messages_as_text,
        images_as_urls=convert_images_to_image_urls,
    )
