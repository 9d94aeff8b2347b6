"""Message preparation every backend applies before sending: roles converted, same-role runs
merged, content flattened or image parts encoded. `Model.build_request` calls it once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hydragent.messages import MessageRole, _coerce_tool_call, content_to_text
from hydragent.messages.images import convert_image_part


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
            convert_image_part(p, images_as_urls) if p.get("type") in ("image", "image_url") else p
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
