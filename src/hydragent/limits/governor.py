"""The governor: what every model call passes through when `limits` is set.

`Governor.acquire(estimate)` is a context manager around one call (one HTTP attempt). On
entry it waits, in this order, for
1. any shared slow-down (a 429 another process saw),
2. a concurrency lease (`max_concurrency`, or the adaptive cap after a 429),
3. the call's worst-case dollars, reserved in the shared ledger (`budget_usd`); when the
   reserve cannot fit and no other call holds a reservation that could still come back,
   it raises BudgetExhausted and the call never starts,
4. the shared request and token rates (pyrate-limiter's GCRA),
and on exit it settles the reservation with the real usage and gives the lease back. So the
spend can never pass the budget: every call that starts has its worst case paid for first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hydragent.limits.stores import LimitStore

POLL_S = 0.01  # first wait between tries for a lease or a reservation; doubles up to 0.2 s


class BudgetExhausted(RuntimeError):
    """The next call's worst-case cost does not fit in `limits.budget_usd`."""


class CallTooLarge(RuntimeError):
    """One call's own token estimate is more than `limits.tokens_per_minute` admits in a
    minute: it could only be let through by pretending the bucket were larger, so it is
    refused before it starts rather than stalling every sharer for a minute a call."""


@dataclass
class Estimate:
    """A call before it is made: its prompt's token bound and its output cap."""

    prompt_tokens: int  # an upper bound (UTF-8 bytes of the prepared request)
    typical_prompt_tokens: int  # the usual size (a quarter of the bytes), for the token rate
    max_tokens: int | None  # None: no output cap (a budget then refuses the call)

    @property
    def tokens(self) -> int:
        return self.typical_prompt_tokens + (self.max_tokens or 0)


@dataclass
class Lease:
    """One admitted call: settle it with the usage the reply reported."""

    governor: Governor
    estimate: Estimate
    reservation: str | None = None
    reserved_usd: float = 0.0
    slot: str | None = None
    settled: bool = False

    def settle(self, usage: dict[str, Any] | None, billed: bool = True) -> None:
        self.governor.settle(self, usage, billed)


class Governor:
    """Shared limits for one limit key, on one store (SQLite file or Redis)."""

    def __init__(
        self,
        store: LimitStore,
        key: str,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: int | None = None,
        max_concurrency: int | None = None,
        budget_usd: float | None = None,
        price: Callable[[dict[str, Any]], float | None] | None = None,
        lease_ttl_s: float = 900.0,
    ) -> None:
        from hydragent.limits.rate import SharedRate, request_rate, token_rate

        self.store = store
        self.key = key
        self.max_concurrency = max_concurrency
        self.tokens_per_minute = tokens_per_minute
        self.budget_usd = budget_usd
        self.price = price
        self.lease_ttl_s = lease_ttl_s
        self.requests = (
            SharedRate(request_rate(requests_per_minute), store.rate_store(f"{key}:requests"), 1000)
            if requests_per_minute
            else None
        )
        self.tokens = (
            SharedRate(token_rate(tokens_per_minute), store.rate_store(f"{key}:tokens"))
            if tokens_per_minute
            else None
        )
        self.exhausted = False
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "rate_limited": 0, "waited_s": 0.0, "spent_usd": 0.0}
        self._first: float | None = None  # when the first call was admitted
        self._last = 0.0  # when the last one was

    # --- entering a call -----------------------------------------------------------------

    @contextmanager
    def acquire(self, estimate: Estimate) -> Iterator[Lease]:
        """Wait until the call may start (see the module's docstring); yield its lease.
        A call larger than one minute's token allowance raises CallTooLarge at once."""
        self._fits(estimate)
        began = time.monotonic()
        lease = Lease(self, estimate)
        self._pause()
        lease.slot = self._slot()
        ok = started = False
        try:
            if self.budget_usd is not None:
                lease.reservation, lease.reserved_usd = self._reserve(estimate)
            if self.requests is not None:
                self.requests.wait(1)
            if self.tokens is not None:
                self.tokens.wait(estimate.tokens)
            self._count(requests=1, waited_s=time.monotonic() - began)
            with self._lock:
                self._last = time.monotonic()
                self._first = self._first or self._last
            started = True
            yield lease
            ok = True
        finally:
            if lease.reservation is not None and not lease.settled:
                # a call that failed may have been billed: its worst case; one never sent, 0
                self.settle(lease, None, billed=started)
            self.store.release_slot(lease.slot, self.key, self.max_concurrency, grow=ok)

    def _fits(self, estimate: Estimate) -> None:
        limit = self.tokens_per_minute
        if self.tokens is None or not limit or estimate.tokens <= limit:
            return
        cap = f" ({estimate.max_tokens} of them the output cap)" if estimate.max_tokens else ""
        raise CallTooLarge(
            f"limits.tokens_per_minute={limit}: this call is estimated at {estimate.tokens} "
            f"tokens{cap}, more than one minute admits, so it would never fit; raise "
            f"limits.tokens_per_minute above {estimate.tokens}, or lower generation.max_tokens"
        )

    def _pause(self) -> None:
        while (left := self.store.pause_left(self.key)) > 0:
            time.sleep(min(left, 1.0))

    def _slot(self) -> str:
        wait = POLL_S
        while (
            slot := self.store.take_slot(self.key, self.max_concurrency, self.lease_ttl_s)
        ) is None:
            time.sleep(wait)
            wait = min(wait * 2, 0.2)
        return slot

    def worst_case_usd(self, estimate: Estimate) -> float:
        if estimate.max_tokens is None:  # validate refuses this config; a custom Model may not
            raise RuntimeError(
                f"limits.budget_usd={self.budget_usd:g}: the call has no output cap, so its "
                "worst case is unknown; set generation.max_tokens"
            )
        usage = {"input_tokens": estimate.prompt_tokens, "output_tokens": estimate.max_tokens}
        dollars = self.price(usage) if self.price else None
        if dollars is None:
            raise BudgetExhausted(
                f"limits.budget_usd={self.budget_usd:g}: no price for this call; set its "
                "prices in dollars per million tokens: pricing.input_per_mtok=0.5 "
                "pricing.output_per_mtok=1.5 (your model's prices)"
            )
        return dollars

    def _reserve(self, estimate: Estimate) -> tuple[str, float]:
        amount = self.worst_case_usd(estimate)
        assert self.budget_usd is not None
        wait = POLL_S
        while True:
            rid, held_by_others = self.store.reserve(amount, self.budget_usd, self.lease_ttl_s)
            if rid is not None:
                return rid, amount
            if held_by_others <= 0:  # nothing in flight can free room: the budget is spent
                self.exhausted = True
                spent = self.store.spent()
                raise BudgetExhausted(
                    f"limits.budget_usd={self.budget_usd:g} reached: ${spent:.6f} spent, and "
                    f"this call could cost up to ${amount:.6f}; rerun with a larger "
                    "limits.budget_usd to continue"
                )
            time.sleep(wait)  # calls in flight may settle below what they reserved
            wait = min(wait * 2, 0.2)

    # --- leaving a call ------------------------------------------------------------------

    def settle(self, lease: Lease, usage: dict[str, Any] | None, billed: bool = True) -> None:
        """Settle the lease's reservation: the reply's usage at the model's price; without
        usage (an error, or a server that reports none) the worst case, since the call may
        have been billed; nothing when the provider refused it (`billed=False`, a 429)."""
        if lease.settled:
            return
        lease.settled = True
        tokens = int((usage or {}).get("input_tokens") or 0) + int(
            (usage or {}).get("output_tokens") or 0
        )
        if lease.reservation is not None:
            actual = lease.reserved_usd
            if not billed:
                actual = 0.0
            elif tokens and self.price is not None:
                priced = self.price(dict(usage or {}))
                actual = priced if priced is not None else lease.reserved_usd
            self.store.settle(lease.reservation, lease.reserved_usd, actual)
            self._count(spent_usd=actual)
        if self.tokens is not None and tokens > lease.estimate.tokens:
            began = time.monotonic()
            self.tokens.wait(tokens - lease.estimate.tokens)  # pay the excess back
            self._count(waited_s=time.monotonic() - began)  # waited on limits too

    def refused(self, lease: Lease, retry_after_s: float | None) -> None:
        """The provider answered 429 (or a rate-limit header said none are left): every
        process sharing this key pauses, and the adaptive concurrency cap halves."""
        self.settle(lease, None, billed=False)
        self.store.slow_down(self.key, retry_after_s if retry_after_s is not None else 1.0)
        self._count(rate_limited=1)

    def _count(self, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                self.stats[name] += value

    def report(self) -> dict[str, Any]:
        """What summary.json's `limits` holds for this job: `requests_per_minute` is the rate
        at which calls were admitted (the intervals between the first and the last); `waited_s`
        is summed over calls (several wait at once)."""
        with self._lock:
            stats, first, last = dict(self.stats), self._first, self._last
        minutes = (last - first) / 60 if first is not None and last > first else 0.0
        intervals = stats["requests"] - 1  # n admissions span n - 1 intervals
        return {
            "key": self.key,
            "store": self.store.url,
            "requests": int(stats["requests"]),
            "requests_per_minute": round(intervals / minutes, 2) if minutes else None,
            "rate_limited": int(stats["rate_limited"]),
            "waited_s": round(stats["waited_s"], 3),
            "spent_usd": round(stats["spent_usd"], 8),
            "store_spent_usd": round(self.store.spent(), 8),
            "budget_usd": self.budget_usd,
            "budget_exhausted": self.exhausted,
        }

    def close(self) -> None:
        self.store.close()
