"""Shared request and token rates, on pyrate-limiter's GCRA.

The algorithm (GCRA: one "theoretical arrival time" per rate) and the blocking wait are
pyrate-limiter's; hydragent only supplies where the state lives. In Redis that is
pyrate-limiter's own `RedisStateStore` (an atomic Lua script); in SQLite it is
`SqliteStateStore` below, which applies the same `algorithm.step` inside one
`BEGIN IMMEDIATE` transaction, the atomicity `StateStore` asks for.

Requests are spaced evenly (burst 1: `requests_per_minute` never bunch into a spike a
provider's shorter window would count), tokens are a bucket of one minute's worth (how
providers meter tokens), weighed by each call's estimate.
"""

from __future__ import annotations

from typing import Any

from pyrate_limiter import GCRA, Limiter, Rate, StateBucket, StateStore, WallClock

MINUTE_MS = 60_000
SCALE = 1000  # a request weighs 1000 units, so that a fractional requests_per_minute is exact


class SqliteStateStore(StateStore):
    """pyrate-limiter state for one key, in the limits SQLite file."""

    is_async = False
    default_clock = WallClock()  # processes share the wall clock, not a monotonic one

    def __init__(self, store: Any, key: str) -> None:
        self.store = store
        self.key = key

    def check(self, algorithm: Any, rates: list[Rate], now: int, weight: int) -> Any:
        def step(state: tuple[float, ...] | None) -> tuple[Any, Any]:
            current = state if state and len(state) == len(rates) else algorithm.initial(rates)
            new_state, decision = algorithm.step(rates, current, now, weight)
            return (new_state if decision.allowed else None), decision

        return self.store.step_state(self.key, step)

    def read(self, algorithm: Any, rates: list[Rate]) -> Any:
        return self.store.step_state(
            self.key,
            lambda s: (None, s if s and len(s) == len(rates) else algorithm.initial(rates)),
        )

    def reset(self) -> None:
        self.store.step_state(self.key, lambda s: ((), None))


def request_rate(per_minute: float) -> Rate:
    """`per_minute` requests, evenly spaced."""
    return Rate(max(1, round(per_minute * SCALE)), MINUTE_MS, burst=SCALE)


def token_rate(per_minute: int) -> Rate:
    """`per_minute` tokens, a bucket that holds one minute's worth."""
    return Rate(per_minute, MINUTE_MS)


class SharedRate:
    """A blocking limiter on one shared bucket: `wait(n)` returns once the bucket admits
    `n` requests (or tokens). A weight above the bucket's size waits for a full bucket."""

    def __init__(self, rate: Rate, store: StateStore, unit: int = 1) -> None:
        bucket = StateBucket([rate], GCRA(), store=store, clock=WallClock())
        self.rate = rate
        self.unit = unit
        self.limiter = Limiter(bucket, buffer_ms=2)

    def wait(self, n: int = 1) -> None:
        weight = max(1, min(int(n) * self.unit, self.rate.burst))
        if not self.limiter.try_acquire("limits", weight=weight, blocking=True):
            raise RuntimeError(f"the rate limiter can never admit {weight} units")
