"""The `limits` store in one SQLite file, shared by every process on one machine (or on a
shared filesystem with working locks).

Every read-modify-write is one `BEGIN IMMEDIATE` transaction: SQLite takes the file's write
lock before reading, so two processes can never both see room for the last dollar or the
last slot. WAL keeps readers off the writer's back, and a 30 s busy timeout makes a waiting
process queue instead of failing. Times are this machine's wall clock (`time.time()`), the
one clock every process here shares.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (one INTEGER PRIMARY KEY CHECK (one = 1), spent REAL);
INSERT OR IGNORE INTO ledger VALUES (1, 0.0);
CREATE TABLE IF NOT EXISTS reservations (id TEXT PRIMARY KEY, amount REAL, expires REAL);
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, key TEXT, expires REAL);
CREATE INDEX IF NOT EXISTS leases_by_key ON leases (key, expires);
CREATE TABLE IF NOT EXISTS gates (key TEXT PRIMARY KEY, pause_until REAL, cap REAL);
CREATE TABLE IF NOT EXISTS rate_state (key TEXT PRIMARY KEY, state TEXT);
"""


class SqliteStore:
    """Budget ledger, concurrency leases, shared slow-downs and the rate limiter's
    state, in one file. Thread-safe: one connection per process, behind a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")  # sticky: set once for every process
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One atomic read-modify-write: the file's write lock is held from BEGIN on."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    # --- budget ------------------------------------------------------------------------

    def reserve(self, amount: float, budget: float, ttl_s: float) -> tuple[str | None, float]:
        """Reserve `amount` dollars if spent + reserved + amount stays within `budget`:
        (its id, 0) or (None, dollars still reserved by others). A reservation past its
        expiry (its process died mid-call) counts as spent in full: the call may have been
        billed, and the budget must hold."""
        now = time.time()
        with self._write() as db:
            expired = db.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE expires < ?", (now,)
            ).fetchone()[0]
            if expired:
                db.execute("DELETE FROM reservations WHERE expires < ?", (now,))
                db.execute("UPDATE ledger SET spent = spent + ?", (expired,))
            spent = db.execute("SELECT spent FROM ledger").fetchone()[0]
            reserved = db.execute("SELECT COALESCE(SUM(amount), 0) FROM reservations").fetchone()
            if spent + reserved[0] + amount > budget:
                return None, float(reserved[0])
            rid = uuid.uuid4().hex
            db.execute("INSERT INTO reservations VALUES (?, ?, ?)", (rid, amount, now + ttl_s))
            return rid, 0.0

    def settle(self, rid: str, reserved: float, actual: float) -> None:
        """Replace a reservation by what the call really cost. One that expired meanwhile
        was counted in full already: only a cost above it is added."""
        with self._write() as db:
            gone = db.execute("DELETE FROM reservations WHERE id = ?", (rid,)).rowcount == 0
            added = max(0.0, actual - reserved) if gone else actual
            db.execute("UPDATE ledger SET spent = spent + ?", (added,))

    def spent(self) -> float:
        with self._lock:
            return float(self._db.execute("SELECT spent FROM ledger").fetchone()[0])

    # --- concurrency leases and the shared slow-down -----------------------------------

    def take_slot(self, key: str, limit: int | None, ttl_s: float) -> str | None:
        """A lease on one of `limit` in-flight slots for `key` (None: as many as the
        adaptive cap allows), or None when they are all held. Expired leases (a crashed
        holder) are dropped first."""
        now = time.time()
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE expires < ?", (now,))
            held = db.execute("SELECT COUNT(*) FROM leases WHERE key = ?", (key,)).fetchone()[0]
            row = db.execute("SELECT cap FROM gates WHERE key = ?", (key,)).fetchone()
            caps = [c for c in (limit, int(row[0]) if row and row[0] is not None else None) if c]
            if caps and held >= min(caps):
                return None
            lease = uuid.uuid4().hex
            db.execute("INSERT INTO leases VALUES (?, ?, ?)", (lease, key, now + ttl_s))
            return lease

    def release_slot(self, lease: str, key: str, ceiling: int | None, grow: bool) -> None:
        """Give the slot back; a call that succeeded (`grow`) raises the adaptive cap by
        1/cap (additive increase), up to `ceiling`, where the cap is lifted."""
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE id = ?", (lease,))
            row = db.execute("SELECT cap FROM gates WHERE key = ?", (key,)).fetchone()
            if grow and row and row[0] is not None:
                cap = row[0] + 1.0 / max(row[0], 1.0)
                lifted = cap >= (ceiling or 1024)
                db.execute("UPDATE gates SET cap = ? WHERE key = ?", (None if lifted else cap, key))

    def slow_down(self, key: str, seconds: float) -> None:
        """A 429 (or an exhausted rate-limit header) seen by any process: every sharer
        pauses for `seconds`, and the concurrency cap halves (multiplicative decrease)."""
        now = time.time()
        with self._write() as db:
            held = db.execute(
                "SELECT COUNT(*) FROM leases WHERE key = ? AND expires >= ?", (key, now)
            ).fetchone()[0]
            row = db.execute("SELECT pause_until, cap FROM gates WHERE key = ?", (key,)).fetchone()
            current = row[1] if row and row[1] is not None else max(held, 1)
            cap = max(1.0, min(current, max(held, 1)) / 2)
            until = max(now + seconds, row[0] if row and row[0] else 0.0)
            db.execute("INSERT OR REPLACE INTO gates VALUES (?, ?, ?)", (key, until, cap))

    def pause_left(self, key: str) -> float:
        """Seconds every sharer of `key` still waits after a slow-down (0: none)."""
        with self._lock:
            row = self._db.execute("SELECT pause_until FROM gates WHERE key = ?", (key,)).fetchone()
        return max(0.0, (row[0] or 0.0) - time.time()) if row else 0.0

    # --- the rate limiter's state ---------------------------------------------------

    def rate_store(self, key: str) -> Any:
        """pyrate-limiter's StateStore for `key`, kept in this file."""
        from hydragent.limits.rate import SqliteStateStore

        return SqliteStateStore(self, key)

    def step_state(self, key: str, step: Any) -> Any:
        """Read `key`'s limiter state, apply `step(state) -> (new_state, result)` and store
        the new state, in one transaction."""
        with self._write() as db:
            row = db.execute("SELECT state FROM rate_state WHERE key = ?", (key,)).fetchone()
            state, result = step(tuple(json.loads(row[0])) if row else None)
            if state is not None:
                db.execute(
                    "INSERT OR REPLACE INTO rate_state VALUES (?, ?)", (key, json.dumps(state))
                )
            return result

    def close(self) -> None:
        with self._lock:
            self._db.close()
