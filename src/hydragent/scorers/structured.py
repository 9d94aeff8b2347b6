"""The json scorer: the answer parses as JSON, is schema-valid, and matches the target's fields."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from hydragent.models.text import parse_json_blob
from hydragent.scorers.base import Scorer, as_text
from hydragent.tasks.base import Sample


class JsonScorer(Scorer):
    """`json_valid`: parses (and fits `schema` when given); `json_fields`: the share of the
    target's top-level fields the answer reproduces exactly."""

    metrics = ("json_valid", "json_fields")

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        self.schema = dict(schema) if schema else None

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        value = _parse(as_text(answer))
        if value is None:
            return {"json_valid": 0.0, "json_fields": 0.0}
        valid = True
        if self.schema is not None:
            try:
                jsonschema.validate(value, self.schema)
            except jsonschema.ValidationError:
                valid = False
        target = sample.target
        if isinstance(target, str):
            target = _parse(target)
        if isinstance(target, dict) and target:
            matched = sum(
                1 for k, v in target.items() if isinstance(value, dict) and value.get(k) == v
            )
            fields = matched / len(target)
        else:
            fields = float(value == target)
        return {"json_valid": float(valid), "json_fields": fields}


def _parse(text: str) -> Any:
    """The JSON value in `text`, also when a model wraps it in prose or a code fence."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return parse_json_blob(text)[0]
    except ValueError:
        return None
