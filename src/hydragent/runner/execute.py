"""Run samples concurrently with deadlines, scoring and a live progress bar."""

from __future__ import annotations

import queue
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from hydragent.agents.base import AgentResult
from hydragent.grammar import Grammar
from hydragent.messages import TokenUsage
from hydragent.models.base import Model
from hydragent.runner.wrappers import UsageMeter
from hydragent.scorers.base import Scorer
from hydragent.secrets import mask_secrets
from hydragent.tasks.base import Sample


@dataclass
class Outcome:
    """What one sample produced before it becomes a samples.jsonl record."""

    sample: Sample
    started_at: str = ""
    answer: Any = None
    scores: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    error_type: str | None = None
    messages: list[Any] = field(default_factory=list)
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    judge_token_usage: TokenUsage = field(default_factory=TokenUsage)
    latency_s: float = 0.0
    deployment: str | None = None


_LEADING_TYPE = re.compile(r"\s*([A-Za-z_][\w.]*?(?:Error|Exception|Exhausted|Timeout|Exceeded))\b")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _reported_type(error: str | None) -> str:
    """The error type an agent's own error text starts with ("ValueError: ..."), if any."""
    match = _LEADING_TYPE.match(error or "")
    return match.group(1).rsplit(".", 1)[-1] if match else "AgentError"


def work_on(
    sample: Sample,
    agent: Any,
    model: Model,
    grammar: Grammar | None,
    scorers: list[Scorer],
    attempts: int,
    judge: UsageMeter | None = None,
) -> Outcome:
    """Run the agent (`attempts` times) and score; any failure becomes an error outcome.
    The tokens `judge` spent grading this sample are kept apart from the agent's."""
    started = time.perf_counter()
    outcome = Outcome(sample=sample, started_at=_now())
    try:
        results: list[AgentResult] = [
            agent.run(sample.input, model, grammar=grammar, sample=sample.as_dict())
            for _ in range(attempts)
        ]
        for result in results:
            outcome.token_usage = outcome.token_usage + result.token_usage
        first = results[0]
        outcome.messages = first.messages if attempts == 1 else [r.messages for r in results]
        outcome.answer = first.answer if attempts == 1 else [r.answer for r in results]
        outcome.deployment = first.deployment
        failed = next((r for r in results if r.status != "ok"), None)
        if failed is not None:
            outcome.status, outcome.error = "error", failed.error or "the agent reported an error"
            outcome.error_type = _reported_type(failed.error)
        else:
            answers = [r.answer for r in results]
            for scorer in scorers:
                outcome.scores.update(scorer.score_attempts(answers, sample))
    except Exception as error:
        outcome.status, outcome.error = "error", _describe(error)
        outcome.error_type = type(error).__name__
        tail = traceback.extract_tb(error.__traceback__)[-1:]
        if tail:
            outcome.error += f" (at {tail[0].filename.rsplit('/', 1)[-1]}:{tail[0].lineno})"
    if judge is not None:
        outcome.judge_token_usage = judge.take()
    if outcome.status == "error":
        outcome.scores = {}  # an error is not a score of 0: it is counted apart
    outcome.latency_s = time.perf_counter() - started
    outcome.messages = mask_secrets(outcome.messages)
    return outcome


def run_all(
    samples: list[Sample],
    work: Callable[[Sample], Outcome],
    finish: Callable[[Outcome], None],
    max_concurrency: int,
    sample_timeout_s: float | None,
    timeout_s: float | None,
    tick: Callable[[], None] | None = None,
) -> list[Sample]:
    """Run `work` on each sample in daemon threads, at most `max_concurrency` at once, and call
    `finish` on this thread as each ends (so one thread writes the results file). A sample past
    its deadline is finished as an error and its thread abandoned; once the overall deadline
    passes, running samples end as errors and those not started are returned, unrun.

    The threads are long-lived workers that take the next sample from a queue: starting a
    thread per sample made this thread wait on every start, and at 64 samples in flight that
    wait, not the servers, set the pace (benchmarks/p1_runner.py). An abandoned worker is
    replaced, so the concurrency stays at `max_concurrency`. `tick` runs on this thread every
    50 ms (the progress bar's token count)."""
    todo: queue.SimpleQueue[Sample] = queue.SimpleQueue()
    for sample in samples:
        todo.put(sample)
    done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    running: dict[str, tuple[Sample, float]] = {}
    abandoned: set[str] = set()
    lock = threading.Lock()  # guards running, abandoned and taking from todo
    stopped = threading.Event()  # the overall deadline passed: take no more samples

    def worker() -> None:
        while True:
            with lock:
                if stopped.is_set() or todo.empty():
                    return
                sample = todo.get()
                running[sample.id] = (sample, time.monotonic())
            threading.current_thread().name = f"sample-{sample.id}"
            outcome = work(sample)
            done.put(outcome)
            with lock:
                if sample.id in abandoned:
                    return  # a replacement worker took this one's place

    def start_worker() -> None:
        threading.Thread(target=worker, daemon=True).start()

    for _ in range(min(max_concurrency, len(samples))):
        start_worker()
    started_at = time.monotonic()
    while True:
        with lock:
            if not running and (todo.empty() or stopped.is_set()):
                break
        try:
            outcomes = [done.get(timeout=0.05)]
        except queue.Empty:
            outcomes = []
        while not done.empty():
            outcomes.append(done.get())
        if tick is not None:
            tick()
        for outcome in outcomes:
            with lock:
                was_running = running.pop(outcome.sample.id, None) is not None
            if was_running:
                finish(outcome)
        now = time.monotonic()
        if timeout_s is not None and now - started_at >= timeout_s:
            stopped.set()
        overdue: list[tuple[Sample, float, str]] = []
        with lock:
            for sample_id, (sample, began) in list(running.items()):
                if sample_timeout_s is not None and now - began >= sample_timeout_s:
                    kind, reason = "SampleTimeout", f"sample deadline of {sample_timeout_s:g}s"
                elif stopped.is_set():
                    kind, reason = "RunTimeout", f"run deadline of {timeout_s:g}s"
                else:
                    continue
                del running[sample_id]
                abandoned.add(sample_id)
                overdue.append((sample, began, kind, f"{reason} exceeded"))
        for sample, began, kind, reason in overdue:
            started = datetime.now(timezone.utc) - timedelta(seconds=now - began)
            finish(
                Outcome(
                    sample=sample,
                    started_at=started.isoformat(timespec="milliseconds"),
                    status="error",
                    error=reason,
                    error_type=kind,
                    latency_s=now - began,
                )
            )
            if not stopped.is_set():
                start_worker()
    not_run: list[Sample] = []
    while not todo.empty():
        not_run.append(todo.get())
    return not_run
