"""A micro-batcher: concurrent calls from the runner's threads become one engine call.

There is no background thread. The first caller to find the engine idle becomes the leader:
it waits a short window for others to join (or until the batch is full), runs the batch,
hands every caller its own result, and returns. Callers that arrive meanwhile wait for the
next batch. Nothing lingers after the last call returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Request]):
    request: Request
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass
class MicroBatcher(Generic[Request, Result]):
    """Collects requests for up to `window_s` (or `max_batch_size` of them) per engine call.

    `run_batch` receives the requests in arrival order and returns one result each.
    `batch_sizes` records each batch's size, which is how tests and benchmarks see batching.
    """

    run_batch: Callable[[Sequence[Request]], Sequence[Result]]
    max_batch_size: int = 8
    window_s: float = 0.02
    batch_sizes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        self._queue: list[_Pending[Request]] = []
        self._busy = False
        self._cond = threading.Condition()

    def submit(self, request: Request) -> Result:
        pending = _Pending(request)
        with self._cond:
            self._queue.append(pending)
            self._cond.notify_all()
        while True:
            with self._cond:
                while not pending.done and self._busy:
                    self._cond.wait()
                if pending.done:
                    break
                self._busy = True
                batch = self._collect()
            self._run(batch)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _collect(self) -> list[_Pending[Request]]:
        """Wait out the window (lock held by the caller via the condition) and take a batch."""
        deadline = time.monotonic() + self.window_s
        while len(self._queue) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch = self._queue[: self.max_batch_size]
        del self._queue[: self.max_batch_size]
        return batch

    def _run(self, batch: list[_Pending[Request]]) -> None:
        try:
            results = list(self.run_batch([p.request for p in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} returned {len(results)} results")
            for pending, result in zip(batch, results, strict=True):
                pending.result = result
        except BaseException as error:
            for pending in batch:
                pending.error = error
        finally:
            with self._cond:
                self.batch_sizes.append(len(batch))
                for pending in batch:
                    pending.done = True
                self._busy = False
                self._cond.notify_all()
