"""Whether `cache=on|replay` can use its response store: checked by validate and, with the
same verdict, by the run's own build (the file is config/paths.py's `default_cache_path`)."""

from __future__ import annotations

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
        return "" if head in (b"", b"SQLite format 3\x00") else "is not an SQLite file"
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            return ""
    except OSError as error:
        return f"cannot create a file in {folder} ({error.strerror or error})"
