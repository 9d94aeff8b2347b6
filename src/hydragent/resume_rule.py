"""The resume rule, pure: what a run folder holds decides whether a run of a config may go
there (DESIGN.md §4). `conflict` is asked twice with the same answer: by the start check
(config/preflight.py, for `validate` and `run`, every job of a sweep, before anything is
written) and by runner/resume.py, which then acts on the folder. It lives outside runner/ so
that config/ can ask it without importing the runner.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydragent.record import SAMPLES_FILE
from hydragent.secrets import is_secret_key

SUPERSEDED_DIR = "superseded"

# Keys that change how a run goes, never what a sample's result is.
RESULT_NEUTRAL = {
    "runner": (
        "max_concurrency",
        "backend_concurrency",
        "timeout_s",
        "sample_timeout_s",
        "progress",
        "max_error_rate",
        "resume",
    ),
    "task": ("limit",),
}


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not is_secret_key(k)}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def config_hash(resolved: dict[str, Any]) -> str:
    """Hash of the resolved config minus secrets, output paths, cache mode, `limits` (how
    fast and how much, never what a sample answers) and the knobs in RESULT_NEUTRAL, so a
    rerun with more threads, a larger limit or a larger budget still resumes."""
    config = _without_secrets(
        {k: v for k, v in resolved.items() if k not in ("hydra", "cache", "limits")}
    )
    if "pricing" in config:  # the declared, unset node hashes as `pricing: null` did
        from hydragent.cost import given_pricing

        config["pricing"] = given_pricing(config["pricing"])
    for group, keys in RESULT_NEUTRAL.items():
        if isinstance(config.get(group), dict):
            config[group] = {k: v for k, v in config[group].items() if k not in keys}
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Scan:
    """What a samples.jsonl holds: its records in file order, and the lines that are not
    records (byte offset, raw bytes), e.g. a line torn by a kill mid-write."""

    records: list[dict[str, Any]] = field(default_factory=list)
    garbled: list[tuple[int, bytes]] = field(default_factory=list)


def scan(path: Path) -> Scan:
    result = Scan()
    if not path.exists():
        return result
    offset = 0
    for raw in path.read_bytes().splitlines(keepends=True):
        line = raw.rstrip(b"\r\n")
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError
                record = None
            if isinstance(record, dict) and "id" in record:
                result.records.append(record)
            else:
                result.garbled.append((offset, line))
        offset += len(raw)
    return result


def _earlier_overrides(records: list[dict[str, Any]]) -> list[str] | None:
    for record in reversed(records):
        if isinstance(record.get("overrides"), list):
            return [str(o) for o in record["overrides"]]
    return None


def _difference(before: list[str] | None, now: list[str] | None) -> str:
    if before is None or now is None:
        return ""
    gone = [o for o in before if o not in now]
    new = [o for o in now if o not in before]
    if not gone and not new:
        return " (same overrides: a config file changed)"
    parts = [f"was {' '.join(gone)}" if gone else "", f"now {' '.join(new)}" if new else ""]
    return f" ({'; '.join(p for p in parts if p)})"


def conflict(
    folder: Path,
    chash: str,
    mode: str,
    overrides: list[str] | None,
    found: Scan | None = None,
    folder_key: str = "hydra.run.dir",
) -> str | None:
    """The refusal (one line) when `folder` holds results of a config other than `chash` and
    `mode` is auto; None when a run of `chash` may go there. Reads, never writes.
    `folder_key` is the key that picks another folder (a sweep's: hydra.sweep.dir)."""
    found = scan(folder / SAMPLES_FILE) if found is None else found
    hashes = [r.get("config_hash") for r in found.records]
    others = sorted({h for h in hashes if h != chash}, key=str)
    if not others or mode != "auto":
        return None
    return (
        f"{folder} already holds {sum(h != chash for h in hashes)} results of another "
        f"config (config_hash {', '.join(map(str, others))}, this run {chash})"
        f"{_difference(_earlier_overrides(found.records), overrides)}. To keep them and "
        f"start this config there: runner.resume=new_config (they move to "
        f"{folder / SUPERSEDED_DIR}/, where hydragent report still reads them); "
        f"or run into a new folder (another {folder_key}, or none for a fresh one)"
    )
