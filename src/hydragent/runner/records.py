"""samples.jsonl and summary.json: crash-safe appends, resume, and the config hash."""

from __future__ import annotations

import base64
import functools
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydragent.record import GARBLED_FILE, dumps, encode_record
from hydragent.resume_rule import Scan, scan
from hydragent.secrets import has_credential_shape, redact_text


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
    """The record as one strict-JSON line (hydragent.record.encode_record), redacted. The
    line is searched for each secret in its JSON-escaped form first, which is exact (JSON
    escapes character by character), so the record is walked only when a secret is really in
    it: walking every record took a third of the result writer's time at 64 samples in flight
    (benchmarks/p1_runner.py). A credential a server echoed (a Bearer token, an sk- key) is
    masked even when unknown."""
    record, line = encode_record(record)
    known = any(_escaped(secret) in line for secret in secrets)
    if known or has_credential_shape(line):
        record, line = encode_record(redact(record, secrets))
    return record, line


@functools.lru_cache(maxsize=256)
def _escaped(secret: str) -> str:
    """A secret as it reads inside a JSON string (the same few secrets, every record)."""
    return json.dumps(secret)[1:-1]


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


def current_results(
    records: list[dict[str, Any]], chash: str, hashes: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The result of each sample as the task is now: the last record per id whose config
    hash is `chash` and whose sample hash is the sample's current one (`hashes`: id -> hash).
    A record of an edited row (or one written before records carried a sample hash) does not
    count: its sample runs again, and the old line stays in the file."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        sample_id = str(record["id"])
        if (
            record.get("config_hash") == chash
            and sample_id in hashes
            and record.get("sample_hash") == hashes[sample_id]
        ):
            latest[sample_id] = record
    return latest


def move_garbled_aside(path: Path, found: Scan) -> Path | None:
    """Move the lines that are not records into samples.garbled.jsonl, one strict JSON line
    each with its byte offset in the file as it was and its text (bytes that are not UTF-8:
    the text with U+FFFD, and the exact bytes in `line_base64`), so nothing is lost and
    the results file stays readable by any JSON-lines reader. The side file is synced
    before the results file is replaced (atomically, with its good lines byte for byte), so
    a kill at any moment leaves every line in one file or the other."""
    if not found.garbled:
        return None
    side = path.with_name(GARBLED_FILE)
    moved_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with side.open("a", encoding="utf-8") as handle:
        for offset, line in found.garbled:
            entry = {"file": path.name, "offset": offset, "moved_at": moved_at}
            try:
                entry["line"] = line.decode("utf-8")
            except UnicodeDecodeError:  # the text readable, the exact bytes kept beside it
                entry["line"] = line.decode("utf-8", "replace")
                entry["line_base64"] = base64.b64encode(line).decode("ascii")
            handle.write(dumps(entry) + "\n")
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
    """Appends one line per finished sample; one writer thread only.

    A line in the kernel survives a SIGKILL of the runner. Lines are handed to the kernel
    together, at most `flush_interval_s` after the first of them was written: by the next
    write after that, or by `flush()`, which the runner's 50 ms tick calls (a write and a
    flush per line, or one per turn of the event loop, was a tenth of the runner's CPU at
    high concurrency: docs/benchmarks.md, P1-scale). A kill in between loses lines the resume
    runs again, never part of one. fsync guards only against a machine crash and costs
    milliseconds: it runs at most every `sync_interval_s` and at close.
    """

    def __init__(
        self, path: Path, sync_interval_s: float = 0.5, flush_interval_s: float = 0.05
    ) -> None:
        self.path = path
        self.sync_interval_s = sync_interval_s
        self.flush_interval_s = flush_interval_s
        self._handle = path.open("a")
        self._last_sync = self._last_flush = time.monotonic()
        self._pending: list[str] = []

    def write(self, line: str) -> None:
        """Append one JSON line (without its newline)."""
        self._pending.append(line + "\n")
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Hand every pending line to the kernel; fsync when the interval has passed."""
        now = time.monotonic()
        self._last_flush = now
        if self._pending:
            lines, self._pending = "".join(self._pending), []
            self._handle.write(lines)
            self._handle.flush()
        if now - self._last_sync >= self.sync_interval_s:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._handle.fileno())
        self._last_sync = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.sync()
        self._handle.close()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Strict JSON (hydragent.record.dumps), replaced atomically: never a half-written file."""
    temp = path.with_suffix(path.suffix + ".tmp")
    temp.write_text(dumps(data, indent=2) + "\n")
    os.replace(temp, path)
