"""Run samples concurrently with deadlines, scoring and a live progress bar.

The core is one asyncio event loop (docs/architecture.md, "Runner core"): each sample in
flight is a task, not a thread, so thousands cost little; model calls go through the model's
async request path and blocking work (tools, sandboxes, scoring, sync-only models) through
the loop's thread pool (runner/pool.py). Results are finished on the loop's own thread, so one
writer appends samples.jsonl.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
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


async def work_on(
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
    in this task, else the one its error carries)."""
    started = time.perf_counter()
    if replies is not None:
        replies.take()  # a reply of this task's previous sample is not this one's
    outcome = Outcome(sample=sample, started_at=_now())
    error_seen: Exception | None = None
    try:
        results: list[AgentResult] = [
            await _arun(agent, sample, model, grammar) for _ in range(attempts)
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
        elif scorers:
            answers = [r.answer for r in results]
            if judge is None and all(getattr(scorer, "pure", False) for scorer in scorers):
                scores, error, _ = _score(scorers, answers, sample, None)
            else:
                scores, error, outcome.judge_token_usage = await asyncio.to_thread(
                    _score, scorers, answers, sample, judge
                )
            if error is not None:
                raise error
            outcome.scores = scores
    except Exception as error:
        error_seen = error
        outcome.status, outcome.error = "error", _describe(error)
        outcome.error_type = type(error).__name__
        tail = traceback.extract_tb(error.__traceback__)[-1:]
        if tail and not isinstance(error, InvalidScore):
            outcome.error += f" (at {tail[0].filename.rsplit('/', 1)[-1]}:{tail[0].lineno})"
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


async def _arun(agent: Any, sample: Sample, model: Model, grammar: Grammar | None) -> AgentResult:
    """One attempt: the agent's async run, or a duck-typed agent's `run` in the pool."""
    arun = getattr(agent, "arun", None)
    if arun is not None:
        return await arun(sample.input, model, grammar=grammar, sample=sample.as_dict())  # type: ignore[no-any-return]
    return await asyncio.to_thread(
        agent.run, sample.input, model, grammar=grammar, sample=sample.as_dict()
    )


def _score(
    scorers: list[Scorer], answers: list[Any], sample: Sample, judge: Meter | None
) -> tuple[dict[str, float], Exception | None, TokenUsage]:
    """Score in one thread-pool call (a judge or a code scorer blocks), so the judge's meter
    counts exactly this sample's calls, kept even when a scorer fails part way."""
    scores: dict[str, float] = {}
    error: Exception | None = None
    try:
        for scorer in scorers:
            scores.update(checked_scores(scorer, scorer.score_attempts(answers, sample)))
    except Exception as failure:
        error = failure
    return scores, error, judge.take() if judge is not None else TokenUsage()


async def run_all(
    samples: list[Sample],
    work: Callable[[Sample], Awaitable[Outcome]],
    finish: Callable[[Outcome], None],
    max_concurrency: int,
    sample_timeout_s: float | None,
    timeout_s: float | None,
    tick: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> list[Sample]:
    """Run `work` on each sample, at most `max_concurrency` at once, and `finish` each as it
    ends, on the loop's thread (so one writer writes the results file). A sample past its
    deadline is cancelled and finished as an error; once the overall deadline passes, running
    samples end as errors and those not started are returned, unrun. `tick` runs every 50 ms
    (the progress bar's token count).

    When `stop` is set (SIGINT/SIGTERM, runner/stop.py), no sample starts, the ones running
    are cancelled unrecorded, and every sample without a result is returned as unrun."""
    todo = deque(samples)
    running: dict[str, tuple[Sample, float]] = {}
    cut: list[Sample] = []  # stopped part way by the stop gate: unrun, not errors
    halted = stop if stop is not None else threading.Event()

    async def one(sample: Sample) -> None:
        began = time.monotonic()
        running[sample.id] = (sample, began)
        try:
            async with asyncio.timeout(sample_timeout_s):
                outcome = await work(sample)
        except TimeoutError:
            reason = f"sample deadline of {sample_timeout_s:g}s exceeded"
            outcome = _overdue(sample, began, "SampleTimeout", reason)
        del running[sample.id]
        if halted.is_set() and outcome.error_type == "RunStoppedError":
            cut.append(sample)
        else:
            finish(outcome)

    async def worker() -> None:
        while todo and not halted.is_set():
            await one(todo.popleft())

    workers = [asyncio.ensure_future(worker()) for _ in range(min(max_concurrency, len(todo)))]
    everyone = asyncio.gather(*workers)
    everyone.add_done_callback(_retrieved)  # a stop's cancellation is no error to log
    started_at = time.monotonic()
    try:
        while not everyone.done():
            await asyncio.wait([everyone], timeout=0.05)
            if tick is not None:
                tick()
            if halted.is_set():
                left = await _cancel(workers, running)
                return cut + [sample for sample, _ in left] + list(todo)
            if timeout_s is not None and time.monotonic() - started_at >= timeout_s:
                reason = f"run deadline of {timeout_s:g}s exceeded"
                for sample, began in await _cancel(workers, running):
                    finish(_overdue(sample, began, "RunTimeout", reason))
                return list(todo)
        everyone.result()  # a failure to record (a full disk) ends the run
        return cut + list(todo)
    finally:
        for task in workers:
            task.cancel()


async def _cancel(
    workers: list[asyncio.Future[None]], running: dict[str, tuple[Sample, float]]
) -> list[tuple[Sample, float]]:
    """Cancel every worker; the samples they were running come back with their starts.
    A cancelled sample's blocking call, if any, is abandoned in its daemon thread."""
    left = list(running.values())
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return left


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _overdue(sample: Sample, began: float, kind: str, reason: str) -> Outcome:
    """The error outcome of a sample a deadline ended."""
    elapsed = time.monotonic() - began
    started = datetime.now(timezone.utc) - timedelta(seconds=elapsed)
    return Outcome(
        sample=sample,
        started_at=started.isoformat(timespec="milliseconds"),
        status="error",
        error=reason,
        error_type=kind,
        latency_s=elapsed,
    )
