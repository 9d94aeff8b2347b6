"""The model_graded scorer: a judge model (`judge=`, any backend) grades each answer."""

from __future__ import annotations

import re
from typing import Any

from hydragent.messages import content_to_text
from hydragent.scorers.base import Scorer, as_text
from hydragent.tasks.base import Sample

DEFAULT_TEMPLATE = """You are grading an answer to a question.
Question: {input}
Reference answer: {target}
Submitted answer: {answer}
Is the submitted answer correct, given the reference?
Reply with exactly one word: CORRECT or INCORRECT."""
PLACEHOLDERS = ("input", "target", "answer")
VERDICT = re.compile(r"\b(INCORRECT|CORRECT)\b", re.I)


class ModelGradedScorer(Scorer):
    """1 when the judge's reply says CORRECT. The runner passes the judge model built from
    `judge=`; a reply with no verdict is an error, so a broken judge never scores 0 silently."""

    metrics = ("model_graded",)

    def __init__(self, judge: Any = None, template: str = DEFAULT_TEMPLATE) -> None:
        if judge is None:
            from hydragent.models.registry import backends

            raise ValueError(
                "scorer=model_graded needs a judge model: add judge=<backend> "
                f"({', '.join(backends())})"
            )
        self.judge = judge
        self.template = _checked_template(template)

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        prompt = self.template.format(
            input=sample.input, target=as_text(sample.target), answer=as_text(answer)
        )
        reply = self.judge.generate([{"role": "user", "content": prompt}])
        text = content_to_text(reply.content)
        verdict = VERDICT.search(text)
        if verdict is None:
            raise ValueError(f"the judge gave no CORRECT/INCORRECT verdict: {text[:120]!r}")
        return {"model_graded": float(verdict.group(1).upper() == "CORRECT")}


def _checked_template(template: str) -> str:
    """The template, when it names only the placeholders `score` fills: an unknown one
    (`{reference}`) failed every sample with a KeyError after validate said OK."""
    import string

    valid = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    try:
        named = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as error:
        raise ValueError(
            f"template: {error}; write {{{{ and }}}} for literal braces; placeholders: {valid}"
        ) from None
    unknown = sorted({name for name in named if name not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"template names {', '.join(f'{{{n}}}' for n in unknown)}, which the scorer does "
            f"not fill; valid placeholders: {valid} (write {{{{ and }}}} for literal braces)"
        )
    return template
