"""Scorers (`scorer=`): exact, includes, regex, numeric, json, code_exec, model_graded."""

from __future__ import annotations

from hydragent.scorers.base import Scorer
from hydragent.scorers.code import CodeExecScorer, build_program, pass_at_k
from hydragent.scorers.graded import ModelGradedScorer
from hydragent.scorers.structured import JsonScorer
from hydragent.scorers.text import ExactScorer, IncludesScorer, NumericScorer, RegexScorer

__all__ = [
    "CodeExecScorer",
    "ExactScorer",
    "IncludesScorer",
    "JsonScorer",
    "ModelGradedScorer",
    "NumericScorer",
    "RegexScorer",
    "Scorer",
    "build_program",
    "pass_at_k",
]
