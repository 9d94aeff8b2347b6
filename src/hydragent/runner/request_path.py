"""What the runner puts between an agent and a backend: layers around the request function.

Every call a model makes, `generate`, `__call__` or `generate_stream`, becomes one
`ModelRequest` handed to `model.request(req)` (models/base.py). The runner wraps that one
function, nothing else: `route(model, layers)` replaces the instance's `request` with the
layers chained around the backend's own. The model stays the same object, so everything an
agent or the assembly reads from it (capabilities, parse_tool_calls, model_id, prepare...) is
the backend's, with no method to forward.

A layer is `layer(req, send) -> ChatMessage`: it may answer itself (a cache hit), wait (a
cap), refuse (a stop), or call `send(req)`, the next layer in. The runner's layers:
`stop_gate` (no call starts once a stop was requested), `ResponseCache` (runner/cache.py),
`Cap` (runner.backend_concurrency), `LastReply` (an errored sample keeps the model's raw
reply) and, for the judge, `Meter` (its tokens per sample).

The runner's event loop calls `model.arequest(req)` (agents/steps.py), which `route` chains
the same way: a layer's `acall(req, asend)` is its async twin, and the innermost send is the
backend's own `arequest` (an async client) or its sync request in the thread pool. A layer
without `acall` (a later branch's) still composes: it runs in the thread pool around the sync
chain inward of it. Per-sample state (Meter, LastReply) lives in context variables, which a
thread and an asyncio task each hold their own of.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Generator
from contextvars import ContextVar
from typing import Any

from hydragent.messages import ChatMessage, ChatMessageStreamDelta, TokenUsage
from hydragent.models.base import (
    Model,
    ModelRequest,
    call_arguments,
    message_as_delta,
    overrides_generate,
)
from hydragent.runner import stop

Send = Callable[[ModelRequest], ChatMessage]
ASend = Callable[[ModelRequest], Awaitable[ChatMessage]]
Layer = Callable[[ModelRequest, Send], ChatMessage]


class StopGate:
    """Once SIGINT or SIGTERM arrived, no model call starts (runner/stop.py)."""

    def __call__(self, req: ModelRequest, send: Send) -> ChatMessage:
        stop.check()
        return send(req)

    async def acall(self, req: ModelRequest, send: ASend) -> ChatMessage:
        stop.check()
        return await send(req)


stop_gate = StopGate()


class Cap:
    """At most `limit` calls in the backend at once (runner.backend_concurrency), e.g. one for
    a local model that cannot batch, while other samples' work goes on. One semaphore for
    both paths, so sync and async calls share the same slots."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)

    def __call__(self, req: ModelRequest, send: Send) -> ChatMessage:
        with self._slots:
            return send(req)

    async def acall(self, req: ModelRequest, send: ASend) -> ChatMessage:
        if not self._slots.acquire(blocking=False):  # wait for a slot in the thread pool
            taken = asyncio.get_running_loop().run_in_executor(None, self._slots.acquire)
            try:
                await asyncio.shield(taken)
            except asyncio.CancelledError:  # a deadline: the slot, once taken, goes back
                taken.add_done_callback(lambda _: self._slots.release())
                raise
        try:
            return await send(req)
        finally:
            self._slots.release()


class Meter:
    """Counts the tokens spent by each sample. The judge is shared by every sample, but a
    sample is scored in its own context (its worker thread, or one thread-pool call), so
    `take` after scoring gives exactly that sample's judge tokens."""

    def __init__(self) -> None:
        self._spent: ContextVar[TokenUsage] = ContextVar(f"meter-{id(self)}")

    def __call__(self, req: ModelRequest, send: Send) -> ChatMessage:
        return self._count(send(req))

    async def acall(self, req: ModelRequest, send: ASend) -> ChatMessage:
        return self._count(await send(req))

    def _count(self, reply: ChatMessage) -> ChatMessage:
        self._spent.set(self._spent.get(TokenUsage()) + reply.token_usage)
        return reply

    def take(self) -> TokenUsage:
        """This context's tokens since the last `take`, and start counting afresh."""
        spent = self._spent.get(TokenUsage())
        self._spent.set(TokenUsage())
        return spent


class LastReply:
    """Keeps each sample's last reply text (per thread, or per asyncio task), so an errored
    sample's record can show what the model said even when the agent failed before the reply
    reached its transcript (a tool call that did not parse, an answer that broke the grammar)."""

    def __init__(self) -> None:
        self._last: ContextVar[str | None] = ContextVar(f"last-reply-{id(self)}")

    def __call__(self, req: ModelRequest, send: Send) -> ChatMessage:
        return self._keep(send(req))

    async def acall(self, req: ModelRequest, send: ASend) -> ChatMessage:
        return self._keep(await send(req))

    def _keep(self, reply: ChatMessage) -> ChatMessage:
        self._last.set(reply.content if isinstance(reply.content, str) else None)
        return reply

    def take(self) -> str | None:
        """This context's last reply text since the last `take`."""
        text = self._last.get(None)
        self._last.set(None)
        return text


def _backend_send(model: Model) -> Send:
    """The backend's own request function. A smolagents-style subclass that customised
    `generate` is called through it, as `send_request` does."""
    if overrides_generate(type(model)):
        generate = type(model).generate
        return lambda req: generate(model, req.messages, **call_arguments(req))
    return functools.partial(type(model).request, model)


def _backend_asend(model: Model, send: Send) -> ASend:
    """The backend's own async request function: its `arequest` where it has its own (an
    async client), else its sync `send` in the thread pool."""
    if overrides_generate(type(model)) or type(model).arequest is Model.arequest:
        return lambda req: asyncio.to_thread(send, req)
    return functools.partial(type(model).arequest, model)


def _in_thread(layer: Layer, send: Send) -> ASend:
    """A layer without an async twin, around the sync chain inward of it, in the pool."""
    return lambda req: asyncio.to_thread(layer, req, send)


def route(model: Model, layers: list[Layer]) -> Model:
    """Send every request of `model` through `layers`, the first outermost; returns `model`.

    `request`, `request_stream` and `arequest` are replaced on the instance; for a subclass
    that customised `generate`, `generate` is (its own `generate` is then the backend's send). A
    routed stream arrives as one delta, the whole reply, so cached and capped calls stream
    alike."""
    send = _backend_send(model)
    asend = _backend_asend(model, send)
    for layer in reversed(layers):
        acall = getattr(layer, "acall", None)
        asend = functools.partial(acall, send=asend) if acall else _in_thread(layer, send)
        send = functools.partial(layer, send=send)
    chained: Send = send
    model.arequest = asend  # type: ignore[method-assign]

    def request(req: ModelRequest) -> ChatMessage:
        return chained(req)

    def request_stream(req: ModelRequest) -> Generator[ChatMessageStreamDelta, None, None]:
        return message_as_delta(chained(req))

    if overrides_generate(type(model)):  # its own generate reaches the backend's request

        def generate(
            messages: list[Any],
            stop_sequences: list[str] | None = None,
            response_format: dict[str, Any] | None = None,
            tools_to_call_from: list[Any] | None = None,
            grammar: Any = None,
            **kwargs: Any,
        ) -> ChatMessage:
            req = Model.build_request(
                model,
                messages,
                stop_sequences,
                response_format,
                tools_to_call_from,
                grammar,
                kwargs,
            )
            return chained(req)

        model.generate = generate  # type: ignore[method-assign]
        return model
    model.request = request  # type: ignore[method-assign]
    model.request_stream = request_stream  # type: ignore[method-assign]
    return model
