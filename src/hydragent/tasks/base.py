"""Samples and tasks: what the runner iterates over, each sample with a stable id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: A config problem as `(key relative to the task node, one-line message with the fix)`, the
#: shape models' `environment_problems()` use, so assemble reports both the same way.
Problem = tuple[str, str]


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


class TaskDataError(ValueError):
    """Data that cannot become samples. The message starts with where: `file:line:` for
    line-based files, `file: row N:` otherwise, so the user can open the right place."""


def check_limit(limit: Any) -> int | None:
    """`task.limit` as an int, or a ValueError naming the key and the valid range."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(
            f"task.limit: {limit!r} is not valid; valid: an integer >= 1 (keep the first N "
            "samples), or null for all of them"
        )
    return limit


class Task:
    """A dataset of samples. Subclasses implement `load`; `limit` keeps the first N.

    Constructors only record their settings (they never read data), so a dry assemble can
    build a task cheaply and ask `check()` what a run would trip over."""

    name: str = "task"

    def __init__(self, limit: int | None = None) -> None:
        self.limit = check_limit(limit)

    def load(self) -> list[Sample]:
        raise NotImplementedError(f"{type(self).__name__} does not implement load")

    def check(self) -> list[Problem]:
        """What `load` would fail on, found without loading the samples (files are streamed
        or only their schema is read). The base class knows nothing to check."""
        return []

    def samples(self) -> list[Sample]:
        loaded = self.load()
        seen: set[str] = set()
        for sample in loaded:
            if sample.id in seen:
                raise TaskDataError(f"task {self.name!r} has two samples with id {sample.id!r}")
            seen.add(sample.id)
        return loaded[: self.limit] if self.limit else loaded


DEFAULT_FIELDS = {"id": "id", "input": "input", "target": "target"}


def check_fields(fields: Mapping[str, str] | None) -> dict[str, str]:
    """The full field mapping; an unknown key (`fields.inptu`) is a ValueError."""
    given = {str(k): str(v) for k, v in dict(fields or {}).items()}
    unknown = sorted(set(given) - set(DEFAULT_FIELDS))
    if unknown:
        raise ValueError(
            f"task.fields: unknown key {unknown[0]!r}; valid: {', '.join(DEFAULT_FIELDS)} "
            "(each names the column that holds it)"
        )
    return {**DEFAULT_FIELDS, **given}


class SampleBuilder:
    """Turns raw rows into samples one at a time, checking each where it stands.

    A row without an id gets one from its input's hash, so the id survives reordering of
    the file (resume relies on it). `keep=False` checks without holding the samples."""

    def __init__(self, fields: Mapping[str, str] | None, keep: bool = True) -> None:
        self.mapping = check_fields(fields)
        self.keep = keep
        self.samples: list[Sample] = []
        self._first_seen: dict[str, str] = {}
        self._hash_counts: dict[str, int] = {}

    def add(self, row: Any, where: str) -> None:
        """Add one row; `where` ("data.jsonl:3") starts any error message."""
        if not isinstance(row, Mapping):
            raise TaskDataError(f"{where}: expected an object with fields, got {_kind(row)}")
        column = self.mapping["input"]
        if column not in row:
            raise TaskDataError(
                f"{where}: no input column {column!r}; columns are {sorted(map(str, row))}; "
                "set task.fields.input to one of them"
            )
        if row[column] is None:
            raise TaskDataError(f"{where}: the input column {column!r} is empty (null)")
        text = str(row[column])
        raw_id = row.get(self.mapping["id"])
        if raw_id in (None, ""):
            raw_id = hashlib.sha256(text.encode()).hexdigest()[:12]
            self._hash_counts[raw_id] = self._hash_counts.get(raw_id, 0) + 1
            if self._hash_counts[raw_id] > 1:
                raw_id = f"{raw_id}-{self._hash_counts[raw_id]}"
        sample_id = str(raw_id)
        if sample_id in self._first_seen:
            raise TaskDataError(
                f"{where}: duplicate id {sample_id!r} (first at {self._first_seen[sample_id]}); "
                "ids must be unique, since results and resume are keyed by them"
            )
        self._first_seen[sample_id] = where
        if self.keep:
            used = set(self.mapping.values())
            self.samples.append(
                Sample(
                    id=sample_id,
                    input=text,
                    target=row.get(self.mapping["target"]),
                    metadata={str(k): v for k, v in row.items() if k not in used},
                )
            )


def rows_to_samples(
    rows: Iterable[Mapping[str, Any]], fields: Mapping[str, str] | None, source: str
) -> list[Sample]:
    """Map raw rows (numbered from 1 in messages as `source: row N`) to samples."""
    builder = SampleBuilder(fields)
    for number, row in enumerate(rows, start=1):
        builder.add(row, f"{source}: row {number}")
    return builder.samples


def _kind(value: Any) -> str:
    """A JSON-ish name for a value's type, for messages."""
    names = {list: "an array", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)
