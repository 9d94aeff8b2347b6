"""Scorers on hand-made answers: each metric, its normalisation, and mean ± stderr."""

from __future__ import annotations

import pytest

from hydragent.models.scripted import ScriptedModel
from hydragent.scorers import (
    ExactScorer,
    IncludesScorer,
    JsonScorer,
    ModelGradedScorer,
    NumericScorer,
    RegexScorer,
    pass_at_k,
)
from hydragent.tasks import Sample


def sample(target, **metadata) -> Sample:
    return Sample(id="s", input="question?", target=target, metadata=metadata)


def test_exact_normalises_case_punctuation_and_spaces_unless_told_not_to() -> None:
    assert ExactScorer().score("  paris. ", sample("Paris")) == {"exact": 1.0}
    assert ExactScorer(normalize=False).score("paris", sample("Paris")) == {"exact": 0.0}
    assert ExactScorer().score(None, sample("Paris")) == {"exact": 0.0}


def test_includes_and_regex() -> None:
    assert IncludesScorer().score("The answer is PARIS.", sample("Paris")) == {"includes": 1.0}
    assert IncludesScorer().score("London", sample("Paris")) == {"includes": 0.0}
    assert RegexScorer(pattern=r"\d{4}").score("in 1815", sample(None)) == {"regex": 1.0}
    assert RegexScorer().score("cat", sample("c.t")) == {"regex": 1.0}
    assert RegexScorer(pattern="a", fullmatch=True).score("ab", sample(None)) == {"regex": 0.0}


def test_numeric_reads_the_last_number_within_tolerance() -> None:
    assert NumericScorer().score("It is 7,006,652.", sample(7006652)) == {"numeric": 1.0}
    assert NumericScorer(tolerance=0.01).score("3.14159", sample("3.14")) == {"numeric": 1.0}
    assert NumericScorer().score("3.2", sample(3)) == {"numeric": 0.0}
    assert NumericScorer(relative_tolerance=0.1).score("105", sample(100)) == {"numeric": 1.0}
    assert NumericScorer().score("no number", sample(1)) == {"numeric": 0.0}


def test_json_checks_the_schema_and_the_fields() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
        "required": ["name", "year"],
    }
    target = {"name": "Ada Lovelace", "year": 1815}
    scorer = JsonScorer(schema=schema)
    assert scorer.score('{"name": "Ada Lovelace", "year": 1815}', sample(target)) == {
        "json_valid": 1.0,
        "json_fields": 1.0,
    }
    assert scorer.score('Sure: {"name": "Ada", "year": 1815}', sample(target)) == {
        "json_valid": 1.0,
        "json_fields": 0.5,
    }
    assert scorer.score('{"name": "Ada Lovelace", "year": "1815"}', sample(target)) == {
        "json_valid": 0.0,
        "json_fields": 0.5,
    }
    assert scorer.score("not json", sample(target)) == {"json_valid": 0.0, "json_fields": 0.0}


def test_model_graded_asks_the_judge_and_reads_its_verdict() -> None:
    judge = ScriptedModel(
        match={"Submitted answer: Paris": "CORRECT", "Submitted answer: Rome": "INCORRECT"}
    )
    scorer = ModelGradedScorer(judge=judge)
    assert scorer.score("Paris", sample("Paris")) == {"model_graded": 1.0}
    assert scorer.score("Rome", sample("Paris")) == {"model_graded": 0.0}
    assert "Reference answer: Paris" in judge.calls[0]["messages"][0]["content"][0]["text"]


def test_model_graded_without_a_judge_or_verdict_is_an_error() -> None:
    with pytest.raises(ValueError, match="judge="):
        ModelGradedScorer()
    with pytest.raises(ValueError, match="no CORRECT/INCORRECT verdict"):
        ModelGradedScorer(judge=ScriptedModel(responses=["maybe"])).score("x", sample("y"))


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    assert pass_at_k(5, 0, 1) == 0.0
    assert pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - (3 * 2) / (4 * 3))
