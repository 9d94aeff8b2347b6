"""Reading run folders: each job's records and config, whatever version of hydragent wrote them.

A job is a folder holding samples.jsonl and/or summary.json (a job still running has no
summary yet). Records from older versions lack fields (index, status, job_id, cost_usd,
error_type) or zero-fill an errored sample's scores: `normalise` fills what is missing and
drops the scores of errored samples, so an error is never averaged in as a wrong answer.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hydragent.record import RECORD_FIELDS, SAMPLES_FILE, SUMMARY_FILE, encode_record
from hydragent.stats import group_of

log = logging.getLogger(__name__)
SWEEP_SUMMARY = "sweep"  # summary.json's `kind` in a folder of jobs, written by report
# What every job has apart from its overrides; named so they never clash with an override
# key such as `model=<backend>` (a config group choice, not the model id).
INFO_FIELDS = ("model_id", "task_name", "backend")


@dataclass
class Job:
    """One job folder: its records (normalised), overrides and constant config."""

    number: int
    folder: Path
    name: str
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    overrides: dict[str, str]
    info: dict[str, str | None] = field(default_factory=dict)  # INFO_FIELDS
    unreadable: int = 0  # lines of samples.jsonl that were not records

    @property
    def metrics(self) -> list[str]:
        return sorted({m for r in self.records for m in r["scores"]})

    def scores(self, metric: str) -> list[float]:
        return [r["scores"][metric] for r in self.records if metric in r["scores"]]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.overrides.items()) or self.name


def override_map(overrides: list[str]) -> dict[str, str]:
    """`key=value` overrides as a dict; `+`/`++`/`~` prefixes dropped."""
    pairs = {}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if sep:
            pairs[key.lstrip("+~")] = value
    return pairs


def _folder_order(root: Path, folder: Path) -> tuple[Any, ...]:
    """Sweep jobs by number (0, 1, ..., 10), not as text (0, 1, 10, 2)."""
    parts = folder.relative_to(root).parts
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def _is_job(folder: Path) -> bool:
    """A job folder has samples.jsonl, or a job's summary.json; the summary.json that
    `report` writes into a sweep folder (its jobs and comparisons) does not make one."""
    if (folder / SAMPLES_FILE).exists():
        return True
    try:
        summary = json.loads((folder / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("kind") != SWEEP_SUMMARY


def find_job_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    if _is_job(root):
        return [root]
    found = {
        p.parent
        for name in (SUMMARY_FILE, SAMPLES_FILE)
        for p in root.rglob(name)
        if ".hydra" not in p.parts and _is_job(p.parent)
    }
    # A job's own earlier results (superseded/<hash>_<time>/, set aside by a rerun with a
    # new config) are not jobs of the sweep: point report or view at them to see them.
    found = {f for f in found if not any(parent in found for parent in f.parents)}
    if not found:
        raise FileNotFoundError(
            f"no {SUMMARY_FILE} or {SAMPLES_FILE} in {root} or below; pass a run or sweep folder"
        )
    return sorted(found, key=lambda f: _folder_order(root, f))


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.exists() else None
    except yaml.YAMLError:
        return None


def error_cause(record: dict[str, Any]) -> str | None:
    """A short cause for an errored sample: its error_type, else the error's leading
    `SomethingError:` name, else the error's first 60 characters."""
    if record.get("status") == "ok":
        return None
    if record.get("error_type"):
        return str(record["error_type"])
    text = str(record.get("error") or "unknown error")
    match = re.match(r"\s*([A-Za-z_][\w.]*(?:Error|Exception|Timeout|Exceeded))\b", text)
    return match.group(1) if match else text.strip().splitlines()[0][:60]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def normalise(record: dict[str, Any], position: int, group_by: str = "group") -> dict[str, Any]:
    """A record with every field the report and viewer read, from any writer version;
    `group` holds the field named by `group_by` (the samples' clusters for paired stats)."""
    out = {name: None for name in RECORD_FIELDS} | dict(record)
    out["group"] = group_of(record, group_by)
    out["id"] = str(record["id"])
    if not isinstance(out.get("index"), int):
        out["index"] = position
    status = record.get("status") or ("error" if record.get("error") else "ok")
    out["status"] = status
    scores = record.get("scores") if isinstance(record.get("scores"), dict) else {}
    numeric = {k: v for k, v in ((k, _number(v)) for k, v in scores.items()) if v is not None}
    out["scores"] = numeric if status == "ok" else {}
    out["cause"] = error_cause(out)
    usage = record.get("token_usage") if isinstance(record.get("token_usage"), dict) else {}
    out["token_usage"] = usage
    out["messages"] = record.get("messages") if isinstance(record.get("messages"), list) else []
    return out


def _price_missing(records: list[dict[str, Any]]) -> None:
    """Price records written before cost_usd existed (the key absent, not None)."""
    missing = [r for r in records if "cost_usd" not in r]
    if not missing:
        return
    from hydragent.cost import price

    for record in missing:
        record["cost_usd"] = price(record.get("model"), record["token_usage"])


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The file's records and how many lines could not be read (a line torn by a kill,
    or an undecodable one the runner preserved): those are counted, never fatal. Each record
    is cleaned as the runner writes them (hydragent.record): a NaN or a lone surrogate an
    older file holds reads as null or U+FFFD, flagged, so the tables and the page agree."""
    if not path.exists():
        return [], 0
    records, unreadable = [], 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                unreadable += 1
                continue
            if isinstance(record, dict) and "id" in record:
                records.append(encode_record(record)[0])
            else:
                unreadable += 1
    return records, unreadable


def read_summary(folder: Path) -> dict[str, Any]:
    """The job's summary.json, or {} when it has none yet (a job still running) or it cannot
    be read (cut short by a full disk, edited by hand): then a warning names the file and
    the report and viewer rebuild the job's figures from samples.jsonl."""
    path = folder / SUMMARY_FILE
    if not path.exists():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError
        reason = f"{type(error).__name__}: {error}"
    else:
        if isinstance(summary, dict):
            return summary
        reason = f"it holds a JSON {type(summary).__name__}, not an object"
    log.warning(
        "%s cannot be read (%s); it looks truncated or damaged: the figures are rebuilt from "
        "%s (rerun into the folder, or delete the file, to write a new one)",
        path,
        reason,
        folder / SAMPLES_FILE,
    )
    return {}


def load_job(root: Path, folder: Path, number: int, group_by: str = "group") -> Job:
    summary = read_summary(folder)
    raw, unreadable = read_records(folder / SAMPLES_FILE)
    if unreadable:
        log.warning(
            "%s: %d line(s) are not records (torn by a kill, or not JSON) and are left out",
            folder / SAMPLES_FILE,
            unreadable,
        )
    # A resumed job may hold an id twice (kept line, then rerun): the last line wins.
    latest: dict[str, dict[str, Any]] = {}
    for position, record in enumerate(raw):
        latest[str(record["id"])] = normalise(record, position, group_by)
    records = sorted(latest.values(), key=lambda r: r["index"])
    _price_missing(records)
    overrides_list = summary.get("overrides")
    if overrides_list is None:
        overrides_list = _yaml(folder / ".hydra" / "overrides.yaml") or (
            (records[0].get("overrides") or []) if records else []
        )
    config = _yaml(folder / ".hydra" / "config.yaml") or {}
    model_node = config.get("model") if isinstance(config.get("model"), dict) else {}
    task_node = config.get("task") if isinstance(config.get("task"), dict) else {}
    target = str(model_node.get("_target_") or "")
    info = {
        "model_id": summary.get("model")
        or (records[0].get("model") if records else None)
        or model_node.get("model_id"),
        "task_name": summary.get("task") or task_node.get("name"),
        "backend": summary.get("backend") or (target.rsplit(".", 1)[-1] if target else None),
    }
    name = str(folder.relative_to(root)) if folder != root else folder.name
    return Job(
        number=number,
        folder=folder,
        name=name,
        summary=summary,
        records=records,
        overrides=override_map(list(overrides_list)),
        info={k: (str(v) if v is not None else None) for k, v in info.items()},
        unreadable=unreadable,
    )


def load_jobs(root: Path, group_by: str = "group") -> list[Job]:
    """Every job under `root` (a run, a sweep, or a folder of them), in sweep order.
    `group_by` names the record field that groups samples (dotted: `metadata.document`)."""
    root = Path(root)
    folders = find_job_folders(root)
    return [load_job(root, folder, n, group_by) for n, folder in enumerate(folders)]


def varying_and_constant(jobs: list[Job]) -> tuple[list[str], dict[str, str]]:
    """The keys whose value differs between jobs (overrides, then model id, task name and
    backend when they differ), and the settings all jobs share."""
    keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
    varying = [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]
    constant = {k: jobs[0].overrides[k] for k in keys if k not in varying}
    partitions = [_partition(jobs, lambda job, k=k: job.overrides.get(k)) for k in varying]
    for name in INFO_FIELDS:
        values = {job.info.get(name) for job in jobs}
        if len(values) > 1:
            # Shown once: model_id is left out when an override (model.model_id) says it.
            if _partition(jobs, lambda job, n=name: job.info.get(n)) not in partitions:
                varying.append(name)
        elif None not in values and values != {constant.get(name.split("_")[0])}:
            constant[name] = str(values.pop())
    return varying, constant


def _partition(jobs: list[Job], value: Any) -> set[frozenset[int]]:
    """How `value` splits the jobs into groups (to find settings that say the same)."""
    groups: dict[Any, set[int]] = {}
    for job in jobs:
        groups.setdefault(value(job), set()).add(job.number)
    return {frozenset(g) for g in groups.values()}


def setting(job: Job, key: str) -> str | None:
    """A job's value for a key from `varying_and_constant`."""
    return job.info.get(key) if key in INFO_FIELDS else job.overrides.get(key)


def error_causes(job: Job) -> list[tuple[str, int]]:
    """(cause, count) of the job's errored samples, most frequent first."""
    counts = Counter(r["cause"] for r in job.records if r["status"] != "ok")
    return counts.most_common()
