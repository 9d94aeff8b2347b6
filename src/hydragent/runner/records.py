"""samples.jsonl and summary.json: crash-safe appends, resume, and the config hash."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydragent.secrets import has_credential_shape, is_secret_key, redact_text

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
RECORD_FIELDS = (
    "id",
    "index",
    "input",
    "target",
    "group",
    "answer",
    "scores",
    "status",
    "error",
    "error_type",
    "messages",
    "token_usage",
    "judge_token_usage",
    "cost_usd",
    "latency_s",
    "model",
    "deployment",
    "sandbox",
    "job_id",
    "overrides",
    "config_hash",
    "started_at",
)
GARBLED_FILE = "samples.garbled.jsonl"
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


def redact(value: Any, secrets: list[str]) -> Any:
    """A copy with every known secret value (and credential-shaped text) masked in every
    string, for text such as error messages a client library may have built from the key."""
    if isinstance(value, str):
        return redact_text(value, secrets, pairs=False)
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


def record_line(record: dict[str, Any], secrets: list[str]) -> tuple[dict[str, Any], str]:
    """The record as one JSON line, redacted. The line is searched for each secret in its
    JSON-escaped form first, which is exact (JSON escapes character by character), so the
    record is walked only when a secret is really in it: walking every record took a third
    of the result writer's time at 64 samples in flight (benchmarks/p1_runner.py). A
    credential a server echoed (a Bearer token, an sk- key) is masked even when unknown."""
    line = json.dumps(record, default=str)
    known = any(json.dumps(secret)[1:-1] in line for secret in secrets)
    if known or has_credential_shape(line):
        record = redact(record, secrets)
        line = json.dumps(record, default=str)
    return record, line


def config_hash(resolved: dict[str, Any]) -> str:
    """Hash of the resolved config minus secrets, output paths, cache mode, `limits` (how
    fast and how much, never what a sample answers) and the knobs in RESULT_NEUTRAL, so a
    rerun with more threads, a larger limit or a larger budget still resumes."""
    config = _without_secrets(
        {k: v for k, v in resolved.items() if k not in ("hydra", "cache", "limits")}
    )
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


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every whole record in the file, in file order. A resumed run appends, so an id may
    appear more than once (a failed try, then its rerun): the last one is the result."""
    return scan(path).records


def latest_by_id(records: list[dict[str, Any]], chash: str | None = None) -> dict[str, Any]:
    """The last record of each id (of config hash `chash`, when given)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        if chash is None or record.get("config_hash") == chash:
            latest[str(record["id"])] = record
    return latest


def move_garbled_aside(path: Path, found: Scan) -> Path | None:
    """Move the lines that are not records into samples.garbled.jsonl, one JSON line each
    with its byte offset in the file as it was and its exact text, so nothing is lost and
    the results file stays readable by any JSON-lines reader. The side file is synced
    before the results file is replaced (atomically, with its good lines byte for byte), so
    a kill at any moment leaves every line in one file or the other."""
    if not found.garbled:
        return None
    side = path.with_name(GARBLED_FILE)
    moved_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with side.open("a", encoding="utf-8") as handle:
        for offset, line in found.garbled:
            text = line.decode("utf-8", "surrogateescape")
            entry = {"file": path.name, "offset": offset, "line": text, "moved_at": moved_at}
            handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    bad = {offset for offset, _ in found.garbled}
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with path.open("rb") as source, temp.open("wb") as target:
        offset = 0
        for raw in source.read().splitlines(keepends=True):
            if offset not in bad and raw.strip():
                target.write(raw if raw.endswith(b"\n") else raw + b"\n")
            offset += len(raw)
        target.flush()
        os.fsync(target.fileno())
    os.replace(temp, path)
    return side


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
