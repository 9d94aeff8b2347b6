"""An agent's loop written once, driven two ways: synchronously and on an event loop.

An agent's `steps(...)` is a generator (sans-IO): it yields what it needs done, a `Generate`
(a model call) or a `Blocking` (a tool call, a sandbox step), and gets back the result, or the
error thrown in at the yield. `drive` performs them on this thread (`agent.run`, the public
API); `adrive` performs them on the runner's event loop, a model call through the model's
async request path (`Model.agenerate`) and blocking work in the runner's thread pool, so that
thousands of samples are in flight without a thread each (docs/architecture.md, "Runner core").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass
class Generate:
    """`model.generate(messages, **kwargs)`; the reply (a ChatMessage) is sent back."""

    messages: list[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Blocking:
    """`fn(*args)`, which may block (tools, sandboxes): off the event loop when driven async."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


Effect = Generate | Blocking
Steps = Generator[Effect, Any, R]


def drive(steps: Steps[R], model: Any) -> R:
    """Run `steps` on this thread: each model call through `model.generate`."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            if isinstance(effect, Generate):
                value = model.generate(effect.messages, **effect.kwargs)
            else:
                value = effect.fn(*effect.args)
        except Exception as failure:  # handed to the agent at its yield, as a call would raise
            error = failure


async def adrive(steps: Steps[R], model: Any) -> R:
    """Run `steps` on the event loop: model calls through `model.agenerate`, blocking work in
    the loop's thread pool. A cancelled drive (a deadline) closes the generator."""
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            value, error = None, None
            try:
                if isinstance(effect, Generate):
                    value = await agenerate(model, effect.messages, effect.kwargs)
                else:
                    value = await asyncio.to_thread(effect.fn, *effect.args)
            except Exception as failure:
                error = failure
    finally:
        steps.close()


async def agenerate(model: Any, messages: list[Any], kwargs: dict[str, Any]) -> Any:
    """The model's async call where it has one (every hydragent `Model`), else its sync
    `generate` in the thread pool (a duck-typed model of a user's)."""
    call = getattr(model, "agenerate", None)
    if call is not None:
        return await call(messages, **kwargs)
    return await asyncio.to_thread(model.generate, messages, **kwargs)
