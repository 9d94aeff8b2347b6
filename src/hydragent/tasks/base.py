"""Samples and tasks: what the runner iterates over, each sample with a stable id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    """One unit of work; `metadata` carries task extras (tests, schema, entry point...)."""

    id: str
    input: str
    target: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The view agents and scorers receive as `sample=`."""
        return {"id": self.id, "input": self.input, "target": self.target, **self.metadata}


class Task:
    """A dataset of samples. Subclasses implement `load`; `limit` keeps the first N."""

    name: str = "task"

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"task.limit must be a positive integer or null, got {limit}")
        self.limit = limit

    def load(self) -> list[Sample]:
        raise NotImplementedError(f"{type(self).__name__} does not implement load")

    def samples(self) -> list[Sample]:
        loaded = self.load()
        seen: set[str] = set()
        for sample in loaded:
            if sample.id in seen:
                raise ValueError(f"task {self.name!r} has two samples with id {sample.id!r}")
            seen.add(sample.id)
        return loaded[: self.limit] if self.limit else loaded


DEFAULT_FIELDS = {"id": "id", "input": "input", "target": "target"}


def rows_to_samples(
    rows: Iterable[Mapping[str, Any]], fields: Mapping[str, str] | None, source: str
) -> list[Sample]:
    """Map raw rows to samples. A row without an id gets one from its input's hash, so the
    id survives reordering of the file (resume relies on it)."""
    mapping = {**DEFAULT_FIELDS, **dict(fields or {})}
    samples: list[Sample] = []
    counts: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        if mapping["input"] not in row:
            raise ValueError(
                f"{source}: row {number} has no input column {mapping['input']!r}; "
                f"columns are {sorted(row)}; set task.fields.input to one of them"
            )
        text = str(row[mapping["input"]])
        raw_id = row.get(mapping["id"])
        if raw_id in (None, ""):
            raw_id = hashlib.sha256(text.encode()).hexdigest()[:12]
            counts[raw_id] = counts.get(raw_id, 0) + 1
            if counts[raw_id] > 1:
                raw_id = f"{raw_id}-{counts[raw_id]}"
        used = {mapping["id"], mapping["input"], mapping["target"]}
        samples.append(
            Sample(
                id=str(raw_id),
                input=text,
                target=row.get(mapping["target"]),
                metadata={k: v for k, v in row.items() if k not in used},
            )
        )
    return samples
