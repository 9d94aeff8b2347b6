"""The Model contract every backend implements: one request path, and ApiModel's client.

`Model.generate` (written once) builds a `ModelRequest` and hands it to the backend's
`request(req)`. Backends subclass `Model` (local engines) or `ApiModel` (remote clients,
rate limited and retried by models/retry.py, whose names are re-exported here). Shared
behaviour lives in small functions rather than hooks, so that a backend module reads top to
bottom: map the request, call the client through `call_api`, convert the response.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import json
import logging
import re
import sys
import threading
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

from hydragent.generation import GenerationConfig
from hydragent.grammar import Grammar
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    content_to_text,
    prepare_messages,
)
from hydragent.models.retry import RETRYABLE_STATUS as RETRYABLE_STATUS
from hydragent.models.retry import RateLimiter as RateLimiter
from hydragent.models.retry import RetryPolicy as RetryPolicy
from hydragent.models.retry import call_with_retries as call_with_retries
from hydragent.models.retry import describe_error as describe_error
from hydragent.models.retry import is_retryable as is_retryable
from hydragent.models.retry import retry_after_seconds as retry_after_seconds
from hydragent.models.retry import retry_policy
from hydragent.models.retry import status_code_of as status_code_of
from hydragent.secrets import is_secret_key, mask_secrets

logger = logging.getLogger("hydragent.models")

T = TypeVar("T")


class _RemoveParameter:
    """Sentinel: an instance kwarg set to REMOVE_PARAMETER drops that key from the request."""

    def __repr__(self) -> str:
        return "REMOVE_PARAMETER"


REMOVE_PARAMETER = _RemoveParameter()

TOOL_ROLE_CONVERSIONS = {
    MessageRole.TOOL_CALL.value: MessageRole.ASSISTANT.value,
    MessageRole.TOOL_RESPONSE.value: MessageRole.USER.value,
}


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


# --- dry build and capabilities -------------------------------------------------------------

_DRY_BUILD: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hydragent_dry_build", default=False
)


@contextlib.contextmanager
def dry_build() -> Iterator[None]:
    """Build models cheaply: inside it, constructors load no weights, open no connection and
    need no client library; what a real run would lack is reported by
    `model.environment_problems()` instead of raised. `hydragent validate` builds this way."""
    token = _DRY_BUILD.set(True)
    try:
        yield
    finally:
        _DRY_BUILD.reset(token)


def in_dry_build() -> bool:
    """Whether the current context is a `dry_build()`."""
    return _DRY_BUILD.get()


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What one model instance can do; assembly checks a config against it."""

    grammars: frozenset[str] = frozenset()
    native_tools: bool = False
    streaming: bool = False
    images: bool = False
    stop: bool = True
    reasoning: bool = False


@dataclasses.dataclass
class ModelRequest:
    """One call, normalised once by `Model.build_request`: what every backend's `request()`,
    the runner's wrappers and the cache key work on.

    `messages` are prepared (roles converted once, same-role runs merged, flattened, images
    encoded). `stop_sequences` are the call's and the generation node's. `generation` holds the
    generation node's settings by their portable names (the lowest precedence); `kwargs` the
    call's own keywords. `Model.settings(req)` gives the backend-native settings: call keywords,
    overlaid by the model's constructor keywords.
    """

    messages: list[dict[str, Any]]
    stop_sequences: list[str] | None = None
    tools: list[Any] | None = None
    grammar: Grammar | None = None
    generation: dict[str, Any] = dataclasses.field(default_factory=dict)
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def tool_schemas(self) -> list[dict[str, Any]] | None:
        """The tools as OpenAI-style function schemas (None without tools)."""
        return [get_tool_json_schema(tool) for tool in self.tools] if self.tools else None


def apply_generation(
    settings: dict[str, Any], generation: Mapping[str, Any], names: Mapping[str, str | None]
) -> dict[str, Any]:
    """Add the generation node's settings to `settings` under the backend's `names` (portable
    name -> native name, None to leave it out); a key already set, by either name, wins."""
    for key, value in generation.items():
        native = names.get(key, key) if key in names else None
        if native is not None and native not in settings and key not in settings:
            settings[native] = value
    return settings


# --- the contract --------------------------------------------------------------------------


class Model:
    """A chat model: `generate(messages, ...) -> ChatMessage`, and `model(messages)` alike.

    Backends implement `request(req)`, and `request_stream(req)` where they stream; a subclass
    written for smolagents may override `generate` instead. Unknown constructor keywords are
    kept in `self.kwargs` and sent with every call, where they win over call-time keywords.
    """

    #: grammar types (see hydragent.grammar) this backend can enforce.
    supported_grammars: ClassVar[frozenset[str]] = frozenset()
    #: default `custom_role_conversions` when the user gives none.
    default_role_conversions: ClassVar[dict[str, str] | None] = None
    #: loads weights at construction, so `hydragent validate` only checks its signature.
    loads_weights: ClassVar[bool] = False
    #: its sampling takes a `seed` generation parameter, so the run's `seed` reaches it.
    takes_seed: ClassVar[bool] = False
    #: calls tools natively (the API's tool-calling field), rather than reading JSON from text.
    native_tools: ClassVar[bool] = False
    #: takes image parts in messages.
    takes_images: ClassVar[bool] = False
    #: returns reasoning apart from the answer.
    returns_reasoning: ClassVar[bool] = False
    #: roles the backend's wire protocol cannot carry, mapped under the user's conversions.
    wire_roles: ClassVar[dict[str, str] | None] = None
    #: images go as data URLs (OpenAI style) rather than base64 parts.
    images_as_urls: ClassVar[bool] = False

    def __init__(
        self,
        flatten_messages_as_text: bool = False,
        tool_name_key: str = "name",
        tool_arguments_key: str = "arguments",
        model_id: str | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        generation: GenerationConfig | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # smolagents' positional order; custom_role_conversions and generation are ours.
        self.generation = GenerationConfig.coerce(generation)
        self.model_id = model_id
        self.flatten_messages_as_text = flatten_messages_as_text
        self.custom_role_conversions = (
            dict(custom_role_conversions)
            if custom_role_conversions is not None
            else self.default_role_conversions
        )
        self.tool_name_key = tool_name_key
        self.tool_arguments_key = tool_arguments_key
        self.kwargs = dict(kwargs)

    # The public call surface, written once: build the request, hand it to the backend.
    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """The model's reply to `messages` (smolagents' signature, plus `grammar`)."""
        request = self.build_request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        return self.request(request)

    def generate_stream(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Generator[ChatMessageStreamDelta, None, None]:
        """The reply as `ChatMessageStreamDelta`s, for backends that stream."""
        request = self.build_request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        return self.request_stream(request)

    def __call__(self, *args: Any, **kwargs: Any) -> ChatMessage:
        return self.generate(*args, **kwargs)

    # What a backend implements.
    def request(self, req: ModelRequest) -> ChatMessage:
        """Send one normalised request; each backend implements it.

        A smolagents-style subclass that overrides `generate` instead gets the request back
        through its own `generate` (see `send_request`), so the runner's wrappers work with
        it too."""
        if overrides_generate(type(self)):
            return self.generate(req.messages, **call_arguments(req))
        raise NotImplementedError(
            f"{type(self).__name__} does not implement request(req) (nor generate)"
        )

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta, None, None]:
        """Stream one normalised request; backends that stream implement it. Any other model
        (a smolagents-style subclass with only `generate`, a backend without streaming) sends
        its whole reply as one delta, so smolagents' agents with `stream_outputs=True` run on
        it (smolagents refuses such a model at the agent's construction)."""
        if overrides_generate(type(self), "generate_stream", "request_stream"):
            return self.generate_stream(req.messages, **call_arguments(req))
        return message_as_delta(send_request(self, req))

    def build_request(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> ModelRequest:
        """The normalised request: messages prepared once, the grammar resolved (and checked
        against this backend), stop sequences and the generation node's settings gathered."""
        generation = self.generation.settings() if self.generation is not None else {}
        stops = list(stop_sequences or [])
        stops += [s for s in generation.pop("stop", None) or [] if s not in stops]
        return ModelRequest(
            messages=self.prepare(messages),
            stop_sequences=stops if stop_sequences is not None or stops else None,
            tools=list(tools_to_call_from) if tools_to_call_from else None,
            grammar=self.resolve_grammar(grammar, response_format),
            generation=generation,
            kwargs=dict(kwargs or {}),
        )

    def settings(self, req: ModelRequest) -> dict[str, Any]:
        """Backend-native settings of a call: its keywords, overlaid by the constructor's
        (which win, as in smolagents); REMOVE_PARAMETER drops a key."""
        merged = {**req.kwargs, **self.kwargs}
        return {k: v for k, v in merged.items() if v is not REMOVE_PARAMETER}

    def cleanup(self) -> None:
        """Release engines or connections; the runner calls it once a job ends."""

    @property
    def supports_stop_parameter(self) -> bool:
        """Whether requests may carry `stop` (smolagents' name); o3, o4, gpt-5, grok may not."""
        return supports_stop_parameter(self.model_id or "")

    @property
    def capabilities(self) -> Capabilities:
        """What this instance can do (grammars, tools, streaming, images, stop, reasoning)."""
        return Capabilities(
            grammars=self.grammar_types(),
            native_tools=self.native_tools,
            streaming=type(self).request_stream is not Model.request_stream
            or type(self).generate_stream is not Model.generate_stream,
            images=self.takes_images,
            stop=self.supports_stop_parameter,
            reasoning=self.returns_reasoning,
        )

    def environment_problems(self) -> list[tuple[str, str]]:
        """What a real run of this model would lack here: [(config key relative to the model
        node, or `generation.KEY` for the generation node, one line with the fix)]. Empty when
        it can run. Cheap: no network, no weights."""
        return []

    def sent_generation(self) -> frozenset[str] | None:
        """The generation node's settings (portable names) this instance sends; None where it
        does not say (a user's own Model)."""
        return None

    def unsent_generation(self) -> list[str]:
        """Settings of this instance's generation node that it would never send, so that
        validate and the run's log name them instead of dropping them silently. The seed is
        left out: every run has one, and `takes_seed` says where it goes."""
        sent = self.sent_generation()
        if sent is None or self.generation is None:
            return []
        return sorted(set(self.generation.settings()) - sent - {"seed"})

    def apply_seed(self, seed: int) -> None:
        """Follow the run's `seed` (the top-level config key), so that sampled runs repeat and
        `seed=0,1` sweeps differ. A `seed` set on the model itself wins. Backends whose API
        has no seed (Bedrock Converse) and ones with nothing random (ScriptedModel) ignore it.
        """
        if self.takes_seed:
            self.kwargs.setdefault("seed", seed)

    # Helpers for subclasses.
    def prepare(
        self,
        messages: list[Any],
        images_as_urls: bool | None = None,
        flatten: bool | None = None,
        role_conversions: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Messages after this model's role conversions (the one place roles change: the
        user's, over the roles the wire protocol cannot carry), merging and flattening."""
        conversions = {
            **(self.wire_roles or {}),
            **(role_conversions or self.custom_role_conversions or {}),
        }
        return prepare_messages(
            messages,
            role_conversions=conversions,
            flatten_as_text=self.flatten_messages_as_text if flatten is None else flatten,
            images_as_urls=self.images_as_urls if images_as_urls is None else images_as_urls,
        )

    def resolve_grammar(
        self, grammar: Grammar | dict[str, Any] | None, response_format: dict[str, Any] | None
    ) -> Grammar | None:
        """One grammar from either argument; fails if this backend cannot enforce it."""
        resolved = Grammar.coerce(grammar)
        if resolved is None and response_format:
            resolved = Grammar.from_response_format(response_format)
        if resolved is not None and resolved.type not in self.grammar_types():
            raise ValueError(self.grammar_error(resolved))
        return resolved

    def grammar_types(self) -> frozenset[str]:
        """The grammar types this instance can enforce (a provider may narrow its class's)."""
        return frozenset(self.supported_grammars)

    def grammar_error(self, grammar: Grammar) -> str:
        """Why this instance cannot enforce `grammar`, naming the backends that can."""
        from hydragent.models import grammar_support_error

        return grammar_support_error(type(self), grammar)

    def completion_kwargs(
        self, explicit: dict[str, Any], call_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Explicit arguments, overlaid by call kwargs, overlaid by instance kwargs (which win);
        REMOVE_PARAMETER drops a key, None-valued explicit keys are omitted. (The local
        backends' merge; request-path backends use `settings(req)`.)"""
        merged = {k: v for k, v in explicit.items() if v is not None}
        merged.update(call_kwargs)
        merged.update(self.kwargs)
        return {k: v for k, v in merged.items() if v is not REMOVE_PARAMETER}

    def _prepare_completion_kwargs(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        convert_images_to_image_urls: bool = False,
        tool_choice: str | dict[str, Any] | None = "required",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """smolagents' helper, for subclasses written against it: OpenAI-style completion
        keywords (messages, stop, response_format, tools, tool_choice, then call keywords,
        then the constructor's, which win; REMOVE_PARAMETER drops a key)."""
        from hydragent.models.openai import to_openai_messages

        flatten = kwargs.pop("flatten_messages_as_text", self.flatten_messages_as_text)
        prepared = self.prepare(
            messages,
            images_as_urls=convert_images_to_image_urls,
            flatten=flatten,
            role_conversions=custom_role_conversions,
        )
        completion: dict[str, Any] = {"messages": to_openai_messages(prepared)}
        if stop_sequences is not None and self.supports_stop_parameter:
            completion["stop"] = stop_sequences
        if response_format is not None:
            completion["response_format"] = response_format
        if tools_to_call_from:
            completion["tools"] = [get_tool_json_schema(tool) for tool in tools_to_call_from]
            if tool_choice is not None:
                completion["tool_choice"] = tool_choice
        completion.update(kwargs)
        for key, value in self.kwargs.items():
            if value is REMOVE_PARAMETER:
                completion.pop(key, None)
            else:
                completion[key] = value
        return completion

    def parse_tool_calls(self, message: ChatMessage) -> ChatMessage:
        """Ensure `message.tool_calls` is set: decode native arguments, or read a JSON blob."""
        message.role = MessageRole.ASSISTANT
        if not message.tool_calls:
            if not message.content:
                raise ValueError("model returned neither content nor tool calls")
            message.tool_calls = [
                get_tool_call_from_text(
                    content_to_text(message.content), self.tool_name_key, self.tool_arguments_key
                )
            ]
        for call in message.tool_calls:
            call.function.arguments = parse_tool_arguments(call.function.arguments)
        return message

    # Serialisation: what was configured, never a secret.
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"class": type(self).__name__}
        for name in _init_parameter_names(type(self)):
            if is_secret_key(name) or name in ("client", "kwargs"):
                continue
            if hasattr(self, name):
                value = getattr(self, name)
                if _is_plain(value):
                    data[name] = value
        if self.generation is not None:
            data["generation"] = self.generation.model_dump(exclude_none=True)
        data.update(mask_secrets({k: v for k, v in self.kwargs.items() if _is_plain(v)}))
        _register_with_smolagents(type(self))
        return {k: v for k, v in data.items() if not is_secret_key(k)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        params = {k: v for k, v in data.items() if k != "class"}
        return cls(**params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"


def _owner(cls: type, name: str) -> type:
    return next(klass for klass in cls.__mro__ if name in klass.__dict__)


def overrides_generate(cls: type, generate: str = "generate", request: str = "request") -> bool:
    """Whether `cls` customises `generate` below the class that implements `request` (a
    subclass written the smolagents way, e.g. one that times or logs its calls)."""
    generate_owner, request_owner = _owner(cls, generate), _owner(cls, request)
    return generate_owner is not request_owner and issubclass(generate_owner, request_owner)


def call_arguments(req: ModelRequest) -> dict[str, Any]:
    """The request as `generate` keywords, for a model whose `generate` is its entry."""
    arguments: dict[str, Any] = {
        "stop_sequences": req.stop_sequences,
        "tools_to_call_from": req.tools,
    }
    if req.grammar is not None:
        arguments["grammar"] = req.grammar
    return {**arguments, **req.kwargs}


def message_as_delta(message: ChatMessage) -> Iterator[ChatMessageStreamDelta]:
    """A whole reply as a stream of one delta (tool calls indexed in order)."""
    calls = [
        ChatMessageToolCallStreamDelta(index=i, id=c.id, type=c.type, function=c.function)
        for i, c in enumerate(message.tool_calls or [])
    ]
    yield ChatMessageStreamDelta(
        content=content_to_text(message.content) if message.content is not None else None,
        tool_calls=calls or None,
        token_usage=message.token_usage,
        reasoning_content=message.reasoning_content,
    )


def send_request(model: Model, req: ModelRequest) -> ChatMessage:
    """Hand a request to `model` as wrappers do: through its own `generate` when a subclass
    customised that, else straight to `request`."""
    if overrides_generate(type(model)):
        return model.generate(req.messages, **call_arguments(req))
    return model.request(req)


def _register_with_smolagents(cls: type) -> None:
    """Let smolagents' `Agent.from_dict` find this class: it looks the model's class name up
    in `smolagents.models.MODEL_REGISTRY`. Only when smolagents is already in use."""
    registry = getattr(sys.modules.get("smolagents.models"), "MODEL_REGISTRY", None)
    if isinstance(registry, dict):
        registry[cls.__name__] = cls


def _init_parameter_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for param in inspect.signature(init).parameters.values():
            if (
                param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
                and param.name != "self"
            ) and param.name not in names:
                names.append(param.name)
    return names


def _is_plain(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# --- ApiModel: a network client, rate limited and retried (models/retry.py) ----------------


class ApiModel(Model):
    """A model behind a network client: the client is built lazily, calls are throttled/retried.

    Subclasses implement `create_client()` and use `self.call_api(fn, ...)` for every request.
    Clients' own retry loops should be turned off so that the retry policy is the only one.
    """

    def __init__(
        self,
        model_id: str | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        client: Any | None = None,
        requests_per_minute: float | None = None,
        retry: RetryPolicy | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model_id=model_id, custom_role_conversions=custom_role_conversions, **kwargs
        )
        self.requests_per_minute = requests_per_minute
        self.retry = retry_policy(retry)
        self.rate_limiter = RateLimiter(requests_per_minute)
        self._client = client
        self._client_lock = threading.Lock()

    def build_client(self) -> None:
        """Create the client now, as smolagents does in its constructors, so that a missing
        key or extra fails at construction; never inside `dry_build()`. Backends call it at
        the end of their `__init__`."""
        if self._client is None and not in_dry_build():
            self._client = self.create_client()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self.create_client()
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        """Assigning `model.client` (a mock, a preconfigured client) replaces it."""
        self._client = value

    def create_client(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement create_client")

    def _apply_rate_limit(self) -> None:
        """Wait for the rate limiter (smolagents' name, for subclasses that call it)."""
        self.rate_limiter.throttle()

    @property
    def retryer(self) -> Callable[..., Any]:
        """`self.retryer(fn, *args, **kwargs)` runs `fn` under the retry policy, as
        smolagents' subclasses call it (after `_apply_rate_limit()`)."""

        def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
            if self.retry is None:
                return fn(*args, **kwargs)
            return call_with_retries(
                lambda: fn(*args, **kwargs),
                self.retry,
                describe=f"{type(self).__name__} call",
                endpoint=getattr(self, "api_base", None),
            )

        return run

    def call_api(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def attempt() -> T:
            self.rate_limiter.throttle()
            return fn(*args, **kwargs)

        return self.retryer(attempt)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["retry"] = self.retry.model_dump() if self.retry is not None else False
        return data
