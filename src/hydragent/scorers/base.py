"""Scorers (`scorer=`): each turns an answer into one or more metrics in [0, 1]."""

from __future__ import annotations

from typing import Any

from hydragent.tasks.base import Sample


class Scorer:
    """Scores one answer. Several attempts per sample are averaged unless a scorer
    knows better (code_exec reports pass@k)."""

    #: metric names this scorer reports; an errored sample scores 0 on each of them.
    metrics: tuple[str, ...] = ()
    #: True for a scorer that only computes on the answer (no I/O, no model, no process):
    #: the runner scores it on its event loop; any other runs in the runner's thread pool.
    pure: bool = False

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} does not implement score")

    def score_attempts(self, answers: list[str | None], sample: Sample) -> dict[str, float]:
        per_attempt = [self.score(answer, sample) for answer in answers]
        return {
            name: sum(s[name] for s in per_attempt) / len(per_attempt) for name in per_attempt[0]
        }

    def zero(self) -> dict[str, float]:
        return dict.fromkeys(self.metrics, 0.0)


def as_text(value: Any) -> str:
    return "" if value is None else str(value)
