"""Whether `cache=on|replay` can use its response store: checked by validate and, with the
same verdict, by the run's own build (the file is config/paths.py's `default_cache_path`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from hydragent.config.paths import default_cache_path
from hydragent.config.schemas import CacheConfig


def store_path(path: str | None) -> Path:
    """`cache.path`, else the default file."""
    return Path(path).expanduser() if path else default_cache_path()


def cache_problems(node: Any) -> list[str]:
    """cache=replay needs recorded replies to exist; cache=on a store it can write."""
    cache = CacheConfig.model_validate(node or {})
    if cache.mode == "off":
        return []
    path = store_path(cache.path)
    if cache.mode == "on":
        problem = _unwritable(path)
        return [f"cache.path={str(path)!r}: {problem}; set cache.path, or cache=off"] * bool(
            problem
        )
    if path.is_file():
        problem = _unwritable(path)
        return [f"cache.path={str(path)!r}: {problem}; set cache.path"] * bool(problem)
    return [
        f"cache=replay: no recorded replies at {path}; run once with cache=on to record "
        "them, or set cache.path to the file that holds them"
    ]


def _unwritable(path: Path) -> str:
    """Why the response store at `path` cannot be opened ('' when it can): a folder in its
    place, a file that is not SQLite, or no folder above it where a file can be created. The
    probe file is unlinked at once: nothing is left on disk."""
    import tempfile

    if path.is_dir():
        return "is a folder, not a file"
    if path.is_file():
        with path.open("rb") as handle:
            head = handle.read(16)
        if head not in (b"", b"SQLite format 3\x00"):
            return "is not an SQLite file"
        return _damaged(path) if head else ""
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            return ""
    except OSError as error:
        return f"cannot create a file in {folder} ({error.strerror or error})"


def _damaged(path: Path) -> str:
    """Why sqlite cannot read the file the run would open ('' when it can): a file cut short
    passes the header check, then failed the run after its folder was made. Read as the
    run's first read would meet it: the schema, then `PRAGMA quick_check`. Not opened
    read-only: such a connection cannot remove the -wal/-shm files it makes on closing."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(str(path), timeout=5)) as db:
            db.execute("SELECT name FROM sqlite_master").fetchall()
            verdict = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.OperationalError as error:
        if "locked" in str(error):  # another run writing it: readable, just busy
            return ""
        return f"cannot be read ({error}): it is damaged; delete it (rm {path}) to start anew"
    except sqlite3.DatabaseError as error:
        return f"cannot be read ({error}): it is damaged; delete it (rm {path}) to start anew"
    if verdict and verdict[0] != "ok":
        return f"is damaged (sqlite: {verdict[0]}); delete it (rm {path}) to start anew"
    return ""
