"""The response cache (`cache=on|off|replay`): a sqlite file shared by every job.

It is a layer of the model's request path (runner/request_path.py), so every agent benefits.
The key covers what decides a reply:
the resolved model config without secrets and the normalised request (prepared messages, stop
sequences, generation settings, tools and grammar). `replay` never calls the model, so an
offline rerun is reproducible. A damaged file is named with its fix (`CacheUnreadable`).

Every job of a sweep, and every run given the same `cache.path`, shares the file: WAL lets
readers and the one writer proceed together, a 60 s busy timeout queues writers. A miss is
claimed before the call (a `claims` row, taken in a `BEGIN IMMEDIATE` transaction), so two
jobs asking the same request make one call: the second waits for the first's reply. A claim
whose holder died (same host, its pid gone) or that outlived CLAIM_TTL_S is taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from hydragent.config.paths import default_cache_path
from hydragent.messages import ChatMessage
from hydragent.models.base import ModelRequest
from hydragent.runner import stop
from hydragent.secrets import mask_secrets

CACHE_MODES = ("on", "off", "replay")
CLAIM_TTL_S = 900.0  # a claim older than this is abandoned, whoever holds it


class CacheMiss(RuntimeError):
    """`cache=replay` met a call that was never recorded."""


class CacheUnreadable(RuntimeError):
    """The cache file is damaged or not a hydragent cache: named, with the fix."""

    def __init__(self, path: Path, error: BaseException) -> None:
        super().__init__(
            f"cache file {path} cannot be read ({error}): it is damaged or is not a hydragent "
            f"cache; delete it (rm {path}) to start an empty one, or set cache.path to another "
            "file, or run with cache=off"
        )
        self.path = path


@contextlib.contextmanager
def _named(path: Path) -> Iterator[None]:
    """sqlite's errors about the file itself ("file is not a database", "database disk image
    is malformed") become one CacheUnreadable that names the file and the fix."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            raise
        raise CacheUnreadable(path, error) from None


def normalise_mode(mode: Any) -> str:
    """YAML reads unquoted on/off as booleans; accept those too."""
    value = {True: "on", False: "off"}.get(mode, mode) if isinstance(mode, bool) else mode
    if value not in CACHE_MODES:
        raise ValueError(f"cache.mode must be one of {', '.join(CACHE_MODES)}, got {mode!r}")
    return str(value)


class ResponseStore:
    """A thread-safe sqlite table of key -> reply; several processes may share the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with _named(path):
            self._db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        with self._lock, _named(path):
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses "
                "(key TEXT PRIMARY KEY, model TEXT, reply TEXT, "
                "created REAL DEFAULT (julianday('now')))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS claims "
                "(key TEXT PRIMARY KEY, host TEXT, pid INTEGER, expires REAL)"
            )
            self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock, _named(self.path):
            row = self._db.execute("SELECT reply FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, reply: dict[str, Any]) -> None:
        with self._lock, _named(self.path):
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, reply) VALUES (?, ?, ?)",
                (key, model, json.dumps(reply, default=str)),
            )
            self._db.commit()

    def claim(self, key: str) -> bool:
        """Take the right to call for `key` (False: another caller holds it and is alive)."""
        me, now = (socket.gethostname(), os.getpid()), time.time()
        with self._lock, _named(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT host, pid, expires FROM claims WHERE key = ?", (key,)
                ).fetchone()
                if row and row[2] > now and not (row[0] == me[0] and not _alive(row[1])):
                    return False
                self._db.execute(
                    "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                    (key, *me, now + CLAIM_TTL_S),
                )
                return True
            finally:
                self._db.commit()

    def unclaim(self, key: str) -> None:
        with self._lock, _named(self.path):
            self._db.execute("DELETE FROM claims WHERE key = ?", (key,))
            self._db.commit()

    def stats(self) -> tuple[int, dict[str, int]]:
        with self._lock, _named(self.path):
            rows = self._db.execute(
                "SELECT model, COUNT(*) FROM responses GROUP BY model ORDER BY model"
            ).fetchall()
        per_model = {str(model): int(count) for model, count in rows}
        return sum(per_model.values()), per_model

    def clear(self) -> int:
        with self._lock, _named(self.path):
            count = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            self._db.execute("DELETE FROM responses")
            self._db.commit()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def cache_key(model_config: dict[str, Any], req: ModelRequest) -> str:
    """What decides a reply: the model's config and the normalised request (prepared
    messages, stop sequences, tools, grammar, generation settings and call keywords)."""
    payload = {
        "model": mask_secrets(model_config),
        "messages": req.messages,
        "stop": req.stop_sequences,
        "grammar": req.grammar.model_dump() if req.grammar else None,
        "tools": req.tool_schemas() or [],
        "generation": req.generation,
        "params": mask_secrets(req.kwargs),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """A request-path layer (runner/request_path.py): answers from the store when it can,
    records new replies (mode `on`), or raises CacheMiss (mode `replay`). Counts hits and
    real calls for summary.json."""

    def __init__(
        self, store: ResponseStore, mode: str, model_config: dict[str, Any], model_id: str = ""
    ) -> None:
        self.store = store
        self.mode = normalise_mode(mode)
        self.model_config = model_config
        self.model_id = model_id or str(model_config.get("model_id") or "")
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def __call__(
        self, req: ModelRequest, send: Callable[[ModelRequest], ChatMessage]
    ) -> ChatMessage:
        key = cache_key(self.model_config, req)
        if (found := self._lookup(key)) is not None:
            return found
        while not self.store.claim(key):  # another job is asking the same: wait for its reply
            stop.check()
            time.sleep(0.05)
            if (cached := self.store.get(key)) is not None:
                return self._answered_by_another(cached)
        try:
            if (cached := self.store.get(key)) is not None:  # recorded before the claim
                return self._answered_by_another(cached)
            reply = send(req)
            self.store.put(key, self.model_id, reply.dict())
        finally:
            self.store.unclaim(key)
        return reply

    async def acall(
        self, req: ModelRequest, send: Callable[[ModelRequest], Awaitable[ChatMessage]]
    ) -> ChatMessage:
        """The same on the event loop; the SQLite reads and writes stay on the loop (a local
        file's indexed row), the wait for another job's claim sleeps the task."""
        key = cache_key(self.model_config, req)
        if (found := self._lookup(key)) is not None:
            return found
        while not self.store.claim(key):
            stop.check()
            await asyncio.sleep(0.05)
            if (cached := self.store.get(key)) is not None:
                return self._answered_by_another(cached)
        try:
            if (cached := self.store.get(key)) is not None:
                return self._answered_by_another(cached)
            reply = await send(req)
            self.store.put(key, self.model_id, reply.dict())
        finally:
            self.store.unclaim(key)
        return reply

    def _lookup(self, key: str) -> ChatMessage | None:
        """The recorded reply (a hit), or None (a miss, counted; in replay mode an error)."""
        cached = self.store.get(key)
        if cached is not None:
            with self._lock:
                self.hits += 1
            return ChatMessage.from_dict(cached)
        with self._lock:
            self.misses += 1
        if self.mode == "replay":
            raise CacheMiss(
                f"cache=replay: no recorded reply for this call to {self.model_id!r} in "
                f"{self.store.path}; run once with cache=on to record it"
            )
        return None

    def _answered_by_another(self, cached: dict[str, Any]) -> ChatMessage:
        """A miss that another job (or thread) answered meanwhile counts as a hit."""
        with self._lock:
            self.hits, self.misses = self.hits + 1, self.misses - 1
        return ChatMessage.from_dict(cached)

    @property
    def model_calls(self) -> int:
        """Calls that reached the backend: none in replay."""
        return 0 if self.mode == "replay" else self.misses


def cache_stats(path: str | Path | None = None) -> str:
    """`hydragent cache stats`: where the cache is and how many replies it holds per model."""
    file = Path(path).expanduser() if path else default_cache_path()
    if not file.exists():
        return f"cache {file}: empty (no file yet)"
    store = ResponseStore(file)
    try:
        total, per_model = store.stats()
    finally:
        store.close()
    lines = [f"cache {file}: {total} replies, {file.stat().st_size / 1024:.1f} KiB"]
    lines += [f"  {model}: {count}" for model, count in per_model.items()]
    return "\n".join(lines)


def cache_clear(path: str | Path | None = None) -> str:
    """`hydragent cache clear`: delete every recorded reply."""
    file = Path(path).expanduser() if path else default_cache_path()
    if not file.exists():
        return f"cache {file}: nothing to clear"
    store = ResponseStore(file)
    try:
        removed = store.clear()
    finally:
        store.close()
    return f"cache {file}: removed {removed} replies"
