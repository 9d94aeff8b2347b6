"""Text conventions every backend shares: stop sequences, and tool calls written as text.

Kept apart from the Model contract (base.py) so that wire formats (wire/) and local engines
can use them without importing the contract, and so the contract's module stays one layer.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

from hydragent.messages import ChatMessageToolCall, ChatMessageToolCallFunction

# --- stop sequences ------------------------------------------------------------------------

# smolagents' own pattern (models.supports_stop_parameter), matched on the name after the
# last "/": o3 and o4 (bare or with a -/. suffix, o3-mini excepted), gpt-5*, and grok-* with
# an optional vendor prefix such as "xai.grok-4".
_NO_STOP_PATTERN = re.compile(
    r"^((o3(?:$|[-.].*)|o4(?:$|[-.].*)|gpt-5.*)"
    r"|([A-Za-z][A-Za-z0-9_-]*\.)?grok-[A-Za-z0-9][A-Za-z0-9_.-]*)$"
)


def supports_stop_parameter(model_id: str | None) -> bool:
    """Whether the model accepts `stop`; OpenAI reasoning models and grok reject it."""
    if not model_id:
        return True
    name = model_id.split("/")[-1]
    if name == "o3-mini":
        return True
    return not _NO_STOP_PATTERN.match(name)


def trim_at_stop(text: str | None, stop_sequences: Iterable[str] | None) -> str | None:
    """Cut `text` at the earliest stop sequence, for backends that cannot stop server-side."""
    if not text or not stop_sequences:
        return text
    cut = min((i for s in stop_sequences if s and (i := text.find(s)) != -1), default=-1)
    return text if cut == -1 else text[:cut]


class StopScanner:
    """Streams text out while holding back anything that could be the start of a stop string.

    `feed` returns the text that is safe to emit; `stopped` turns True once a stop sequence
    has appeared, even when it arrived split across several tokens. `lstrip` drops the
    whitespace an answer opens with.
    """

    def __init__(self, stop_sequences: list[str] | None, lstrip: bool = False) -> None:
        self.stops = [s for s in stop_sequences or [] if s]
        self.stopped = False
        self._pending = ""
        self._lstrip = lstrip

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        if self._lstrip:
            text = text.lstrip()
            self._lstrip = not text
        self._pending += text
        cut = min((i for s in self.stops if (i := self._pending.find(s)) != -1), default=-1)
        if cut != -1:
            self.stopped = True
            out, self._pending = self._pending[:cut], ""
            return out
        hold = max((_overlap(self._pending, s) for s in self.stops), default=0)
        out = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(out) :]
        return out

    def flush(self) -> str:
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0


# --- tools ---------------------------------------------------------------------------------

_JSON_TYPES = {"any": None, "image": "string", "audio": "string"}


def get_tool_json_schema(tool: Any) -> dict[str, Any]:
    """OpenAI-style function schema from a tool (name, description, inputs) or a ready dict.

    As in smolagents, an input's `anyOf` is flattened: a `null` member makes it nullable and
    the other members' types become its type (one, or a list), keeping an `enum`.
    """
    if isinstance(tool, dict):
        return tool if "function" in tool else {"type": "function", "function": tool}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in (getattr(tool, "inputs", None) or {}).items():
        prop = _flatten_any_of(dict(spec))
        nullable = bool(prop.pop("nullable", False))
        json_type = _json_type(prop.get("type", "any"))
        if json_type is None:
            prop.pop("type", None)
        else:
            prop["type"] = json_type
        if nullable:
            prop["nullable"] = True
        else:
            required.append(name)
        properties[name] = prop
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": getattr(tool, "description", "") or "",
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _json_type(kind: Any) -> Any:
    """A tool input type in JSON Schema: "any" has none (None), image/audio travel as text."""
    if isinstance(kind, list):
        mapped = [_json_type(k) for k in kind]
        return None if None in mapped else mapped
    return _JSON_TYPES.get(kind, kind)


def _flatten_any_of(prop: dict[str, Any]) -> dict[str, Any]:
    members = prop.pop("anyOf", None)
    if not members:
        return prop
    types: list[Any] = []
    for member in members:
        kind = member.get("type", "any")
        if kind == "null":
            prop["nullable"] = True
            continue
        if kind not in types:
            types.append(kind)
        if "enum" in member:
            prop["enum"] = member["enum"]
    if types:
        prop["type"] = types[0] if len(types) == 1 else types
    return prop


def parse_json_blob(text: str) -> tuple[dict[str, Any], str]:
    """The first top-level JSON object in `text`, and the text before it."""
    start = text.find("{")
    decoder = json.JSONDecoder()
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value, text[:start]
        start = text.find("{", start + 1)
    raise ValueError(f"no JSON object found in model output: {text[:200]!r}")


def get_tool_call_from_text(
    text: str, tool_name_key: str = "name", tool_arguments_key: str = "arguments"
) -> ChatMessageToolCall:
    """A tool call written as a JSON blob in plain text (models without native tool calls),
    as smolagents reads one: arguments given as JSON text are decoded, missing ones are None."""
    blob = _tool_call_blob(text, tool_name_key)
    if tool_name_key not in blob:
        raise ValueError(
            f"Tool call needs to have a key {tool_name_key!r}. Got keys: {list(blob)} instead"
        )
    arguments = blob.get(tool_arguments_key)
    if isinstance(arguments, str):
        arguments = parse_json_if_needed(arguments)
    return ChatMessageToolCall(
        id=str(uuid.uuid4()),
        function=ChatMessageToolCallFunction(name=blob[tool_name_key], arguments=arguments),
    )


def _tool_call_blob(text: str, name_key: str) -> dict[str, Any]:
    """The JSON object of a text tool call. As smolagents: the text from the first `{` to the
    last `}`, and when that is not JSON the decoder's error and where it failed, which tells
    the model what to fix. Where that fails but the text holds another object with the name
    key (a stray brace in the thought before it), that object."""
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        raise ValueError("The model output does not contain any JSON blob.")
    try:
        blob = json.loads(text[start : end + 1], strict=False)
        if isinstance(blob, dict):
            return blob
        raise ValueError(f"The JSON blob you used is not an object: {text[start : end + 1]}")
    except json.JSONDecodeError as error:
        with contextlib.suppress(ValueError):
            found, _ = parse_json_blob(text)
            if name_key in found:
                return found
        at = start + error.pos
        raise ValueError(
            f"The JSON blob you used is invalid due to the following error: {error}.\n"
            f"JSON blob was: {text}, decoding failed on that specific part of the blob:\n"
            f"'{text[max(at - 4, 0) : at + 5]}'."
        ) from None


def parse_json_if_needed(arguments: Any) -> Any:
    """Tool-call arguments decoded when they are JSON text, else as given (smolagents' rule)."""
    if not isinstance(arguments, str | bytes | bytearray):
        return arguments
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments


def parse_tool_arguments(arguments: Any) -> Any:
    """Native tool-call arguments as a tool takes them: JSON text decoded, and no arguments
    at all (None, empty text) an empty dict, so a tool without inputs can be called."""
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    return parse_json_if_needed(arguments)


#: smolagents' name for `trim_at_stop`.
remove_content_after_stop_sequences = trim_at_stop
