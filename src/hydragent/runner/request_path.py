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
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Generator
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
Layer = Callable[[ModelRequest, Send], ChatMessage]


def stop_gate(req: ModelRequest, send: Send) -> ChatMessage:
    """Once SIGINT or SIGTERM arrived, no model call starts (runner/stop.py)."""
    stop.check()
    return send(req)


class Cap:
    """At most `limit` calls in the backend at once (runner.backend_concurrency), e.g. one for
    a local model that cannot batch, while other samples' work goes on."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)

    def __call__(self, req: ModelRequest, send: Send) -> ChatMessage:
        with self._slots:
            return send(req)


class Meter:
    """Counts the tokens spent on each thread. The judge is shared by every sample, but a
    sample is scored on its own worker thread, so `take` after scoring gives exactly that
    sample's judge tokens."""

    def __init__(self) -> None:
        self._spent = threading.local()

    def __call__(self, req: ModelRequest, send: Send) -> ChatMessage:
        reply = send(req)
        self._spent.usage = getattr(self._spent, "usage", TokenUsage()) + reply.token_usage
        return reply

    def take(self) -> TokenUsage:
        """This thread's tokens since the last `take`, and start counting afresh."""
        spent = getattr(self._spent, "usage", TokenUsage())
        self._spent.usage = TokenUsage()
        return spent


class LastReply:
    """Keeps the last reply's text on each thread, so an errored sample's record can show
    what the model said even when the agent failed before the reply reached its transcript
    (a tool call that did not parse, an answer that broke the grammar)."""

    def __init__(self) -> None:
        self._last = threading.local()

    def __call__(self, req: ModelRequest, send: Send) -> ChatMessage:
        reply = send(req)
        self._last.text = reply.content if isinstance(reply.content, str) else None
        return reply

    def take(self) -> str | None:
        """This thread's last reply text since the last `take`."""
        text = getattr(self._last, "text", None)
        self._last.text = None
        return text


def _backend_send(model: Model) -> Send:
    """The backend's own request function. A smolagents-style subclass that customised
    `generate` is called through it, as `send_request` does."""
    if overrides_generate(type(model)):
        generate = type(model).generate
        return lambda req: generate(model, req.messages, **call_arguments(req))
    return functools.partial(type(model).request, model)


def route(model: Model, layers: list[Layer]) -> Model:
    """Send every request of `model` through `layers`, the first outermost; returns `model`.

    `request` and `request_stream` are replaced on the instance; for a subclass that customised
    `generate`, `generate` is (its own `generate` is then the backend's send). A
    routed stream arrives as one delta, the whole reply, so cached and capped calls stream
    alike."""
    send = _backend_send(model)
    for layer in reversed(layers):
        send = functools.partial(layer, send=send)
    chained: Send = send

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
