"""String and number scorers: exact, includes, regex, numeric."""

from __future__ import annotations

import re
import string

from hydragent.scorers.base import Scorer, as_text
from hydragent.tasks.base import Sample

NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def normalise(text: str) -> str:
    """Lower-case, strip punctuation at the ends and collapse whitespace."""
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


class ExactScorer(Scorer):
    """1 when the answer equals the target (after `normalize`, by default on)."""

    pure = True

    metrics = ("exact",)

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = normalize

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        got, want = as_text(answer).strip(), as_text(sample.target).strip()
        if self.normalize:
            got, want = normalise(got), normalise(want)
        return {"exact": float(got == want)}


class IncludesScorer(Scorer):
    """1 when the target appears inside the answer."""

    pure = True

    metrics = ("includes",)

    def __init__(self, ignore_case: bool = True) -> None:
        self.ignore_case = ignore_case

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        got, want = as_text(answer), as_text(sample.target)
        if self.ignore_case:
            got, want = got.lower(), want.lower()
        return {"includes": float(bool(want) and want in got)}


class RegexScorer(Scorer):
    """1 when `pattern` (or, if unset, the target read as a pattern) matches the answer."""

    pure = True

    metrics = ("regex",)

    def __init__(self, pattern: str | None = None, fullmatch: bool = False) -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.fullmatch = fullmatch

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        pattern = self.pattern or re.compile(as_text(sample.target))
        text = as_text(answer).strip()
        found = pattern.fullmatch(text) if self.fullmatch else pattern.search(text)
        return {"regex": float(found is not None)}


class NumericScorer(Scorer):
    """1 when the last number in the answer is within `tolerance` (absolute) or
    `relative_tolerance` of the target."""

    pure = True

    metrics = ("numeric",)

    def __init__(self, tolerance: float = 1e-6, relative_tolerance: float = 0.0) -> None:
        self.tolerance = tolerance
        self.relative_tolerance = relative_tolerance

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        numbers = NUMBER.findall(as_text(answer))
        if not numbers:
            return {"numeric": 0.0}
        try:
            got = float(numbers[-1].replace(",", ""))
            want = float(as_text(sample.target).replace(",", ""))
        except ValueError:
            return {"numeric": 0.0}
        allowed = max(self.tolerance, self.relative_tolerance * abs(want))
        return {"numeric": float(abs(got - want) <= allowed)}
