"""What sets each job apart, for the viewer's job table and labels.

A folder of separate runs (`outputs/`) has jobs that each override different keys: as one
column per key, most cells read "-" ("not overridden", though the job did use a value), and
twenty columns made the page 3,500 px wide. So each varying key is filled with the value the
job really used (its Hydra group choice from .hydra/hydra.yaml, else its resolved value from
.hydra/config.yaml), keys that turn out equal everywhere join the constant settings, and each
job is described by the settings where it differs from the most common value.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from hydragent.report.load import INFO_FIELDS, Job, setting, varying_and_constant


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


class _UsedValues:
    """One job's values for any key: its override, else its group choice, else its config."""

    def __init__(self, job: Job) -> None:
        self.job = job
        hydra = _read(job.folder / ".hydra" / "hydra.yaml") or {}
        runtime = (hydra.get("hydra") or {}).get("runtime") or {}
        self.choices = runtime.get("choices") or {}
        self.config = _read(job.folder / ".hydra" / "config.yaml") or {}

    def __call__(self, key: str) -> str | None:
        value = setting(self.job, key)
        if value is not None:
            return value
        if key in self.choices:
            return _text(self.choices[key])
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return _text(node)


def _partition(values: list[str | None]) -> set[frozenset[int]]:
    groups: dict[str | None, set[int]] = {}
    for i, value in enumerate(values):
        groups.setdefault(value, set()).add(i)
    return {frozenset(g) for g in groups.values()}


def job_settings(jobs: list[Job]) -> dict[str, Any]:
    """varying keys, constant settings, each job's used values, the usual (most common) value
    of each varying key, and per job the `[key, value]` pairs that set it apart."""
    varying, constant = varying_and_constant(jobs)
    used = [_UsedValues(job) for job in jobs]
    filled = [{key: values(key) for key in varying} for values in used]
    differ = [key for key in varying if len({row[key] for row in filled}) > 1]
    still = differ
    # model_id, task_name, backend: shown only when no other key splits the jobs the same way
    # (task=arithmetic already says task_name=arithmetic)
    split = {key: _partition([row[key] for row in filled]) for key in still}
    still = [
        key
        for key in still
        if key not in INFO_FIELDS or all(split[key] != split[k] for k in still if k != key)
    ]
    for key in varying:  # equal in every job once filled in: a constant after all
        if key not in differ and filled and filled[0][key] is not None:
            constant[key] = filled[0][key]
    usual = {key: Counter(row[key] for row in filled).most_common(1)[0][0] for key in still}
    if len(jobs) == 1:  # nothing to differ from: what the run was asked to do
        job = jobs[0]
        own = list(job.overrides.items()) or [
            (k, v) for k, v in (("model", job.info.get("model_id")),
                                ("task", job.info.get("task_name"))) if v
        ]  # fmt: skip
        apart = [[[k, v] for k, v in own]]
    else:
        apart = [[[k, row[k]] for k in still if row[k] != usual[k]] for row in filled]
    return {
        "varying": still,
        "constant": constant,
        "settings": filled,
        "usual": usual,
        "apart": apart,
    }
