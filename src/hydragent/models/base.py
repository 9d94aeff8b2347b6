"""The Model contract every backend implements: one request path, and ApiModel's client.

`Model.generate` (written once) builds a `ModelRequest` and hands it to the backend's
`request(req)`. Backends subclass `Model` (local engines) or `ApiModel` (remote clients,
rate limited and retried by models/retry.py), and declare themselves with a `BackendSpec`
(spec.py). Text conventions live in text.py, smolagents' helper methods in compat.py, wire
formats in wire/: this module is the contract alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
from collections.abc import Generator, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

from hydragent.generation import GenerationConfig
from hydragent.grammar import Grammar
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    MessageRole,
    content_to_text,
)
from hydragent.messages.prepare import prepare_messages
from hydragent.models.compat import (
    REMOVE_PARAMETER,
    SmolagentsCompat,
    call_arguments,
    message_as_delta,
    overrides_generate,
)
from hydragent.models.spec import BackendSpec, GenerationMap, sent_names
from hydragent.models.text import (
    get_tool_call_from_text,
    get_tool_json_schema,
    parse_tool_arguments,
    supports_stop_parameter,
)

logger = logging.getLogger("hydragent.models")

T = TypeVar("T")

TOOL_ROLE_CONVERSIONS = {
    MessageRole.TOOL_CALL.value: MessageRole.ASSISTANT.value,
    MessageRole.TOOL_RESPONSE.value: MessageRole.USER.value,
}


# --- dry build and capabilities -------------------------------------------------------------


@contextlib.contextmanager
def _flag_set(flag: contextvars.ContextVar[bool]) -> Iterator[None]:
    """`flag` is True inside, whatever it was outside (a build mode of this context only)."""
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


_DRY_BUILD: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hydragent_dry_build", default=False
)


@contextlib.contextmanager
def dry_build() -> Iterator[None]:
    """Build models cheaply: inside it, constructors load no weights, open no connection and
    need no client library; what a real run would lack is reported by
    `model.environment_problems()` instead of raised. `hydragent validate` builds this way."""
    with _flag_set(_DRY_BUILD):
        yield


def in_dry_build() -> bool:
    """Whether the current context is a `dry_build()`."""
    return _DRY_BUILD.get()


_CLIENTS_ON_FIRST_USE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hydragent_clients_on_first_use", default=False
)


@contextlib.contextmanager
def clients_on_first_use() -> Iterator[None]:
    """Build models whose network clients may wait for their first use (`client_waits`).

    smolagents builds an API model's client at construction, so that a missing key fails
    there; the runner has checked keys and extras before it builds (config/preflight.py), and
    the OpenAI backend's async request path may never need the client library at all (the
    `openai` SDK takes 0.6 to 1 s to import: docs/benchmarks.md, P1-scale). Every other
    backend builds its client as before. The runner builds inside this."""
    with _flag_set(_CLIENTS_ON_FIRST_USE):
        yield


def clients_wait_for_first_use() -> bool:
    """Whether the current context is a `clients_on_first_use()`."""
    return _CLIENTS_ON_FIRST_USE.get()


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


# --- the contract --------------------------------------------------------------------------


class Model(SmolagentsCompat):
    """A chat model: `generate(messages, ...) -> ChatMessage`, and `model(messages)` alike.

    Backends implement `request(req)`, and `request_stream(req)` where they stream; a subclass
    written for smolagents may override `generate` instead. Unknown constructor keywords are
    kept in `self.kwargs` and sent with every call, where they win over call-time keywords.
    """

    #: the backend's declaration (`declare` sets it, and the capabilities below from it).
    declaration: ClassVar[BackendSpec | None] = None
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

    async def agenerate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """`generate` for the runner's event loop (agents/steps.py): the same request, awaited
        through `arequest` (a subclass that customised `generate` gets it back there)."""
        request = Model.build_request(
            self, messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        return await self.arequest(request)

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

    async def arequest(self, req: ModelRequest) -> ChatMessage:
        """Send one request from the event loop: natively where a backend has an async client
        (chat_completions.py), else its sync request (or `generate`) in the thread pool."""
        import asyncio

        return await asyncio.to_thread(send_request, self, req)

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

    async def aclose(self) -> None:
        """Release what the async path holds on this event loop (the runner awaits it)."""

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

    def generation_names(self) -> GenerationMap | None:
        """Where this instance puts each generation setting (its declaration's mapping);
        None for a model without a declaration (a user's own Model)."""
        return self.declaration.generation_for(self) if self.declaration else None

    def sent_generation(self) -> frozenset[str] | None:
        """The generation node's settings (portable names) this instance sends, derived from
        its mapping; None where it does not say (a user's own Model)."""
        names = self.generation_names()
        return None if names is None else sent_names(names)

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
        from hydragent.models.registry import grammar_support_error

        return grammar_support_error(type(self), grammar)

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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"


def send_request(model: Model, req: ModelRequest) -> ChatMessage:
    """Hand a request to `model` as wrappers do: through its own `generate` when a subclass
    customised that, else straight to `request`."""
    if overrides_generate(type(model)):
        return model.generate(req.messages, **call_arguments(req))
    return model.request(req)
