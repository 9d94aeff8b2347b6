"""Run samples concurrently with deadlines, scoring and a live progress bar."""

from __future__ import annotations

import math
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
from hydragent.runner.request_path import LastReply, Meter
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
    raw_reply: str | None = None


class InvalidScore(ValueError):
    """A scorer returned a value that is not a finite number (NaN, inf, text)."""


_LEADING_TYPE = re.compile(r"\s*([A-Za-z_][\w.]*?(?:Error|Exception|Exhausted|Timeout|Exceeded))\b")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _reported_type(error: str | None) -> str:
    """The error type an agent's own error text starts with ("ValueError: ..."), if any."""
    match = _LEADING_TYPE.match(error or "")
    return match.group(1).rsplit(".", 1)[-1] if match else "AgentError"


def checked_scores(scorer: Scorer, scores: dict[str, Any]) -> dict[str, float]:
    """A scorer's scores, each a finite number; NaN, inf or a non-number makes the sample an
    error naming the scorer (docs/architecture.md, "Guarantees": every value written reads
    back, and a NaN averaged into a metric would make it NaN)."""
    for metric, value in scores.items():
        if isinstance(value, bool):
            continue
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidScore(
                f"scorer {type(scorer).__name__} returned {value!r} for metric {metric!r}: a "
                "score must be a finite number; fix the scorer (the sample counts as an error)"
            )
    return scores


def _raw_reply(messages: list[Any]) -> str | None:
    """The model's last reply in a transcript: its text, or the raw text an error kept."""
    for message in reversed(messages):
        if isinstance(message, list):  # several attempts: the first one's transcript
            return _raw_reply(message)
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        for key in ("raw_reply", "content"):
            if message.get(key) is not None:
                value = message[key]
                return value if isinstance(value, str) else str(value)
    return None


def work_on(
    sample: Sample,
    agent: Any,
    model: Model,
    grammar: Grammar | None,
    scorers: list[Scorer],
    attempts: int,
    judge: Meter | None = None,
    replies: LastReply | None = None,
) -> Outcome:
    """Run the agent (`attempts` times) and score; any failure becomes an error outcome.
    The tokens `judge` spent grading this sample are kept apart from the agent's; an errored
    sample keeps the model's raw reply (from its transcript, else the last one `replies` saw
    on this thread, else the one its error carries)."""
    started = time.perf_counter()
    if replies is not None:
        replies.take()  # a reply of this thread's previous sample is not this one's
    outcome = Outcome(sample=sample, started_at=_now())
    error_seen: Exception | None = None
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
                outcome.scores.update(
                    checked_scores(scorer, scorer.score_attempts(answers, sample))
                )
    except Exception as error:
        error_seen = error
        outcome.status, outcome.error = "error", _describe(error)
        outcome.error_type = type(error).__name__
        tail = traceback.extract_tb(error.__traceback__)[-1:]
        if tail and not isinstance(error, InvalidScore):
            outcome.error += f" (at {tail[0].filename.rsplit('/', 1)[-1]}:{tail[0].lineno})"
    if judge is not None:
        outcome.judge_token_usage = judge.take()
    if outcome.status == "error":
        outcome.scores = {}  # an error is not a score of 0: it is counted apart
        outcome.raw_reply = (
            _raw_reply(outcome.messages)
            or (replies.take() if replies is not None else None)
            or getattr(error_seen, "raw_reply", None)
        )
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
    stop: threading.Event | None = None,
) -> list[Sample]:
    """Run `work` on each sample in daemon threads, at most `max_concurrency` at once, and call
    `finish` on this thread as each ends (so one thread writes the results file). A sample past
    its deadline is finished as an error and its thread abandoned; once the overall deadline
    passes, running samples end as errors and those not started are returned, unrun.

    The threads are long-lived workers that take the next sample from a queue: starting a
    thread per sample made this thread wait on every start, and at 64 samples in flight that
    wait, not the servers, set the pace (benchmarks/p1_runner.py). An abandoned worker is
    replaced, so the concurrency stays at `max_concurrency`. `tick` runs on this thread every
    50 ms (the progress bar's token count).

    When `stop` is set (SIGINT/SIGTERM, runner/stop.py), no sample starts, the ones running
    are abandoned unrecorded, and every sample without a result is returned as unrun."""
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
                if stopped.is_set() or todo.empty() or (stop is not None and stop.is_set()):
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
        halted = stop is not None and stop.is_set()
        for outcome in outcomes:
            if halted and outcome.error_type == "RunStoppedError":
                continue  # cut short by the stop, not a result: it stays unrun
            with lock:
                was_running = running.pop(outcome.sample.id, None) is not None
            if was_running:
                finish(outcome)
        if halted:
            with lock:
                stopped.set()
                cut = [sample for sample, _ in running.values()]
                abandoned.update(running)
                running.clear()
            return cut + _drain(todo)
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
    return _drain(todo)


def _drain(todo: queue.SimpleQueue[Sample]) -> list[Sample]:
    left: list[Sample] = []
    while not todo.empty():
        left.append(todo.get())
    return left
