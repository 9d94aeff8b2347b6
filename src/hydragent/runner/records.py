"""samples.jsonl and summary.json: crash-safe appends, resume, and the config hash."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from hydragent.secrets import MASK, is_secret_key

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
RECORD_FIELDS = (
    "id",
    "input",
    "target",
    "answer",
    "scores",
    "status",
    "error",
    "messages",
    "token_usage",
    "judge_token_usage",
    "latency_s",
    "model",
    "deployment",
    "config_hash",
)
# Keys that change how a run goes, never what a sample's result is.
RESULT_NEUTRAL = {
    "runner": ("max_concurrency", "backend_concurrency", "timeout_s", "progress"),
    "task": ("limit",),
}


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not is_secret_key(k)}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def secret_values(value: Any) -> list[str]:
    """The values held under secret-looking keys anywhere in a resolved config."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if is_secret_key(key) and isinstance(child, str) and len(child) >= 4:
                found.append(child)
            else:
                found += secret_values(child)
    elif isinstance(value, list):
        for child in value:
            found += secret_values(child)
    return found


def redact(value: Any, secrets: list[str]) -> Any:
    """A copy with every known secret value replaced, for text such as error messages that
    a client library may have built from the key."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


def record_line(record: dict[str, Any], secrets: list[str]) -> tuple[dict[str, Any], str]:
    """The record as one JSON line, redacted. The line is searched for each secret in its
    JSON-escaped form first, which is exact (JSON escapes character by character), so the
    record is walked only when a secret is really in it: walking every record took a third
    of the result writer's time at 64 samples in flight (benchmarks/p1_runner.py)."""
    line = json.dumps(record, default=str)
    if any(json.dumps(secret)[1:-1] in line for secret in secrets):
        record = redact(record, secrets)
        line = json.dumps(record, default=str)
    return record, line


def config_hash(resolved: dict[str, Any]) -> str:
    """Hash of the resolved config minus secrets, output paths, cache mode and the knobs in
    RESULT_NEUTRAL, so a rerun with more threads or a larger limit still resumes."""
    config = _without_secrets({k: v for k, v in resolved.items() if k not in ("hydra", "cache")})
    for group, keys in RESULT_NEUTRAL.items():
        if isinstance(config.get(group), dict):
            config[group] = {k: v for k, v in config[group].items() if k not in keys}
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every whole record in the file; a line torn by a kill mid-write is ignored."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record:
            records.append(record)
    return records


def keep_for_resume(path: Path, config_hash_value: str) -> dict[str, dict[str, Any]]:
    """Rewrite the file with the records a rerun keeps (ok, same config hash, one per id)
    and return them by id. The rewrite goes through a temp file and an atomic rename, so a
    kill during it leaves either the old file or the new one."""
    kept: dict[str, dict[str, Any]] = {}
    for record in read_records(path):
        if record.get("status") == "ok" and record.get("config_hash") == config_hash_value:
            kept[str(record["id"])] = record
    if path.exists():
        temp = path.with_suffix(".jsonl.tmp")
        with temp.open("w") as handle:
            for record in kept.values():
                handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    return kept


class RecordWriter:
    """Appends one flushed line per finished sample; one writer thread only.

    A flushed line is in the kernel, so it survives a SIGKILL of the runner. fsync guards only
    against a machine crash and costs milliseconds on the runner's main thread, once per
    sample (benchmarks/p1_runner.py): it runs at most every `sync_interval_s` and at close.
    Lines a machine crash loses are samples that a resume runs again.
    """

    def __init__(self, path: Path, sync_interval_s: float = 0.5) -> None:
        self.path = path
        self.sync_interval_s = sync_interval_s
        self._handle = path.open("a")
        self._last_sync = time.monotonic()

    def write(self, line: str) -> None:
        """Append one JSON line (without its newline)."""
        self._handle.write(line + "\n")
        self._handle.flush()
        if time.monotonic() - self._last_sync >= self.sync_interval_s:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._handle.fileno())
        self._last_sync = time.monotonic()

    def close(self) -> None:
        self._handle.flush()
        self.sync()
        self._handle.close()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    temp = path.with_suffix(path.suffix + ".tmp")
    temp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(temp, path)
