"""Run samples concurrently with deadlines, scoring and a live progress bar."""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hydragent.agents.base import AgentResult
from hydragent.grammar import Grammar
from hydragent.messages import TokenUsage
from hydragent.models.base import Model
from hydragent.runner.cache import CacheMiss
from hydragent.scorers.base import Scorer
from hydragent.secrets import mask_secrets
from hydragent.tasks.base import Sample


@dataclass
class Outcome:
    """What one sample produced before it becomes a samples.jsonl record."""

    sample: Sample
    answer: Any = None
    scores: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    messages: list[Any] = field(default_factory=list)
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    latency_s: float = 0.0
    deployment: str | None = None
    cache_miss: bool = False


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def work_on(
    sample: Sample,
    agent: Any,
    model: Model,
    grammar: Grammar | None,
    scorers: list[Scorer],
    attempts: int,
) -> Outcome:
    """Run the agent (`attempts` times) and score; any failure becomes an error outcome."""
    started = time.perf_counter()
    outcome = Outcome(sample=sample)
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
        else:
            answers = [r.answer for r in results]
            for scorer in scorers:
                outcome.scores.update(scorer.score_attempts(answers, sample))
    except CacheMiss as error:
        outcome.status, outcome.error, outcome.cache_miss = "error", str(error), True
    except Exception as error:
        outcome.status, outcome.error = "error", _describe(error)
        tail = traceback.extract_tb(error.__traceback__)[-1:]
        if tail:
            outcome.error += f" (at {tail[0].filename.rsplit('/', 1)[-1]}:{tail[0].lineno})"
    if outcome.status == "error":
        for scorer in scorers:
            for name, value in scorer.zero().items():
                outcome.scores.setdefault(name, value)
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
) -> list[Sample]:
    """Run `work` on each sample in daemon threads, at most `max_concurrency` at once, and call
    `finish` on this thread as each ends (so one thread writes the results file). A sample past
    its deadline is finished as an error and its thread abandoned; once the overall deadline
    passes, running samples end as errors and those not started are returned, unrun."""
    done: queue.Queue[Outcome] = queue.Queue()
    pending = list(reversed(samples))
    running: dict[str, tuple[Sample, float]] = {}
    started_at = time.monotonic()
    while pending or running:
        now = time.monotonic()
        overall_over = timeout_s is not None and now - started_at >= timeout_s
        while pending and len(running) < max_concurrency and not overall_over:
            sample = pending.pop()
            running[sample.id] = (sample, time.monotonic())
            threading.Thread(
                target=lambda s=sample: done.put(work(s)), daemon=True, name=f"sample-{sample.id}"
            ).start()
        if overall_over and not running:
            break
        try:
            outcome = done.get(timeout=0.05)
        except queue.Empty:
            outcome = None
        if outcome is not None and outcome.sample.id in running:
            del running[outcome.sample.id]
            finish(outcome)
        now = time.monotonic()
        for sample_id, (sample, began) in list(running.items()):
            if sample_timeout_s is not None and now - began >= sample_timeout_s:
                reason = f"sample deadline of {sample_timeout_s:g}s exceeded"
            elif timeout_s is not None and now - started_at >= timeout_s:
                reason = f"run deadline of {timeout_s:g}s exceeded"
            else:
                continue
            del running[sample_id]
            finish(Outcome(sample=sample, status="error", error=reason, latency_s=now - began))
    return list(reversed(pending))
