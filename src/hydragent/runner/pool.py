"""The runner's event loop, its thread pool for blocking work, and what surrounds the loop
(the models' async connections closed on it, the garbage collector held back while it runs).

Everything blocking that a sample does off the loop (a sync-only model's request, a tool, a
sandbox step, scoring) goes through `asyncio.to_thread`, which runs on the loop's default
executor. That executor is a `DaemonPool`:

- its threads are daemons, so a sample abandoned at its deadline, stuck in a tool or a hung
  backend, never keeps the process from exiting (the standard pool's threads are joined at
  exit);
- it starts a thread whenever none is idle, so it never queues work behind a stuck thread.
  It stays bounded by construction: each sample in flight waits on at most one blocking call
  at a time, so the threads are at most the samples in flight plus those abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import queue
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonPool(ThreadPoolExecutor):
    """An executor of daemon threads, started on demand, reused while idle. A
    ThreadPoolExecutor only by type (asyncio accepts no other as the default executor): it
    replaces the pool's submit and shutdown and starts none of its threads."""

    def __init__(self, name: str = "hydragent-pool") -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self._closed = False
        self._name = name

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:  # type: ignore[override]
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the runner's thread pool is shut down")
            if self._idle:
                self._idle -= 1  # an idle thread will take it
            else:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
            self._jobs.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:  # handed to the awaiting task
                    future.set_exception(error)
                else:
                    future.set_result(result)
            del job, future, fn, args, kwargs
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Idle threads end; busy ones (abandoned samples) are daemons and are not waited for."""
        with self._lock:
            self._closed = True
            for _ in range(self._threads):
                self._jobs.put(None)


def run_loop(main: Coroutine[Any, Any, T], close: Iterable[Any] = ()) -> T:
    """Run `main` on a fresh event loop whose default executor is a DaemonPool, then let each
    model in `close` close what its async path holds on that loop (`aclose`). Called from a
    thread that already runs a loop (a notebook), it runs on a thread of its own."""
    main = _closing(list(close), main)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(main)
    box: dict[str, Any] = {}

    def own_thread() -> None:
        try:
            box["value"] = _run(main)
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=own_thread, name="hydragent-loop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _run(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(DaemonPool())
        return runner.run(main)


async def _closing(models: list[Any], main: Coroutine[Any, Any, T]) -> T:
    """Await `main`, then let each model close what its async path holds on this loop."""
    try:
        return await main
    finally:
        for model in models:
            if model is not None and hasattr(model, "aclose"):
                await model.aclose()


@contextlib.contextmanager
def collector_spared() -> Iterator[None]:
    """While samples run, the garbage collector leaves alone what the job built (modules,
    config, model): frozen, its objects are not rescanned by every full collection, and
    young collections come seventy times less often. At 1,024 samples in flight the collector took a
    third of the runner's CPU (docs/benchmarks.md, P1-scale). No collection runs first: the
    start-up's few cycles wait in the frozen set until the loop ends (a full collection of a
    big job's heap took 0.25 s before the first request)."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), threshold[1], threshold[2])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
