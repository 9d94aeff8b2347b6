"""`limits.store`: which shared store a job's limits live in.

`auto` is a SQLite file at the sweep's root folder (every job of a `-m` sweep on this machine
shares it), or in the run folder for a single run; `sqlite:///PATH` names the file (several
runs can share one): `sqlite:///rel/x.sqlite` is relative to the directory hydragent was
started from (whatever `hydra.job.chdir` says), `sqlite:////abs/x.sqlite` absolute;
`redis://HOST:PORT/DB` (or `rediss://`) is for processes on many machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

STORE_FORMS = "auto, sqlite:///PATH, redis://HOST:PORT/DB"
STORE_FILE = "limits.sqlite"


class LimitStore(Protocol):
    """What the governor needs from a store; each operation is atomic across processes
    (sqlite_store.SqliteStore: a `BEGIN IMMEDIATE` transaction; redis_store.RedisStore: a
    Lua script)."""

    url: str

    def reserve(self, amount: float, budget: float, ttl_s: float) -> tuple[str | None, float]:
        """A reservation id, or None and the dollars others still hold reserved."""

    def settle(self, rid: str, reserved: float, actual: float) -> None: ...

    def spent(self) -> float: ...

    def take_slot(self, key: str, limit: int | None, ttl_s: float) -> str | None: ...

    def release_slot(self, lease: str, key: str, ceiling: int | None, grow: bool) -> None: ...

    def slow_down(self, key: str, seconds: float) -> None: ...

    def pause_left(self, key: str) -> float: ...

    def rate_store(self, key: str) -> Any:
        """pyrate-limiter's StateStore for one rate of `key`."""

    def close(self) -> None: ...


def store_problem(url: str) -> str:
    """Why `url` is not a store this module opens ('' when it is)."""
    if url == "auto":
        return ""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return (
            ""
            if url.startswith("sqlite:///") and len(url) > len("sqlite:///")
            else (
                "a SQLite store is sqlite:///PATH (three slashes, then the file: "
                "sqlite:///rel/x.sqlite relative to where hydragent is started, "
                "sqlite:////abs/x.sqlite absolute)"
            )
        )
    if parsed.scheme in ("redis", "rediss"):
        try:
            port = parsed.port
        except ValueError:
            return "the port is not a number"
        db = parsed.path.strip("/")
        if not parsed.hostname or (db and not db.isdigit()):
            return "a Redis store is redis://HOST:PORT/DB (DB a number)"
        return "" if port is None or 0 < port < 65536 else "the port is out of range"
    return f"unknown store form {url!r}"


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///PATH` store: `sqlite:///rel/x.sqlite` is relative (to the
    directory hydragent was started from, once `anchored_store` has run), `sqlite:////abs/x`
    absolute (four slashes), `sqlite:///~/x` under the home folder."""
    return Path(url.removeprefix("sqlite:///")).expanduser()


def anchored_store(url: str, launch_dir: str) -> str:
    """`url` with a relative SQLite path made absolute against `launch_dir`, so that every
    job of a sweep opens the one file whatever `hydra.job.chdir` says (as task.path and
    cache.path are); any other store unchanged."""
    if not url.startswith("sqlite:///") or store_problem(url):
        return url
    return f"sqlite:///{Path(launch_dir, sqlite_path(url))}"


def auto_folder(output_dir: Path) -> Path:
    """The sweep's root folder when this job is part of a sweep, else the run folder."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        if hydra.mode == RunMode.MULTIRUN:
            return Path(hydra.sweep.dir)
    except (ImportError, ValueError):
        pass
    return Path(output_dir)


def open_store(url: str, output_dir: Path) -> LimitStore:
    """The store `url` names, opened (`auto` resolved against `output_dir`)."""
    if url == "auto":
        from hydragent.limits.sqlite_store import SqliteStore

        return SqliteStore(auto_folder(output_dir) / STORE_FILE)
    if url.startswith("sqlite:///"):
        from hydragent.limits.sqlite_store import SqliteStore

        return SqliteStore(sqlite_path(url))
    from hydragent.limits.redis_store import RedisStore

    return RedisStore(url)
