"""One run folder, one writer: an OS lock on the folder for the job's life.

Two `hydragent run` into one folder would each make every call and append every record, so the
second must stop before it writes anything. The lock is a POSIX record lock (`fcntl.lockf`) on
`<folder>/.hydragent.lock`:

- the kernel drops it when its process ends, however it ends (SIGKILL included), so a lock
  left by a killed run is simply free: the next run takes it, no stale-file rule needed;
- `F_GETLK` asks the kernel which process holds it, so the refusal names the real holder
  and nothing is written into the file (a refused run changes no byte of the folder);
- it is not inherited across fork, so a sandbox child never keeps the folder locked.

A POSIX lock belongs to the process, and closing any descriptor of the file drops it: the
registry below opens each folder's lock file once per process and counts nested holds (the
`RunLock` callback, then `run_job` for the Python API, take the same folder).

Where it is taken (conf/config.yaml `hydra.callbacks`, after `preflight`, before the resume guard
and the callback that writes .hydra/): `on_run_start` for a single run and `on_multirun_start`
for a sweep's folder, both before Hydra creates the folder or its log file; `on_job_start`
for each sweep job's own folder (in whichever process the launcher runs it). A refusal is a
config error: exit 2 at once, naming the folder and the PID.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from hydragent.config import ConfigError
from hydragent.config.preflight import PreflightFailed

LOCK_FILE = ".hydragent.lock"
_FLOCK = "hhqqi4x"  # struct flock on Linux: type, whence, start, len, pid (+ padding)
_held: dict[Path, list[int]] = {}  # folder -> [descriptor, holds]
_guard = threading.Lock()
_root: list[Path] = []  # the folder this process's command writes to (run or sweep folder)


class FolderBusy(ConfigError):
    """Another live process holds the folder's lock: exit 2, naming it."""


class FolderLocked(PreflightFailed):
    """Carries FolderBusy out of a Hydra callback (Hydra turns an Exception into a warning)."""

    def __reduce__(self) -> tuple[type, tuple[BaseException]]:
        return (type(self), (self.error,))


def holder(descriptor: int) -> int | None:
    """The PID that holds the lock on `descriptor`'s file, or None when it is free."""
    probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(descriptor, fcntl.F_GETLK, probe))
    return None if kind == fcntl.F_UNLCK else pid


def _describe(pid: int | None) -> str:
    if pid is None:
        return "another process"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        command = ""
    return f"PID {pid}" + (f" ({command.strip()[:120]})" if command.strip() else "")


def acquire(folder: Path | str, key: str = "hydra.run.dir") -> Path:
    """Hold `folder`'s lock (creating the folder); raise FolderBusy when a live process
    holds it. Nested calls in one process count up; each needs its `release`."""
    path = Path(folder).expanduser().absolute()
    with _guard:
        if path in _held:
            _held[path][1] += 1
            return path
        path.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = holder(descriptor)
            os.close(descriptor)
            raise FolderBusy(
                [
                    f"{key}={path}: this folder is in use by {_describe(pid)}, a hydragent run "
                    "writing there; wait for it to finish, or choose another folder (one run "
                    "folder has one writer)"
                ]
            ) from None
        _held[path] = [descriptor, 1]
        return path


def release(folder: Path | str) -> None:
    path = Path(folder).expanduser().absolute()
    with _guard:
        entry = _held.get(path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _held[path]
            os.close(entry[0])  # closing drops the POSIX lock


def release_all() -> None:
    """Let go of every folder this process holds at once: a stopped job's worker takes no
    other job, and the command waits for exactly these locks (runner/stop.py)."""
    with _guard:
        for descriptor, _ in _held.values():
            os.close(descriptor)
        _held.clear()


def run_root() -> Path | None:
    """The run or sweep folder this process's command locked first (for the stop message)."""
    return _root[0] if _root else None


def _take(folder: str, key: str) -> None:
    try:
        path = acquire(folder, key)
    except FolderBusy as error:
        raise FolderLocked(error) from error
    if not _root:
        _root.append(path)


class RunLock(Callback):
    """Takes the folder's lock before Hydra writes anything into it (see the module docstring)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        _take(str(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        _take(str(config.hydra.sweep.dir), "hydra.sweep.dir")

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        _take(str(config.hydra.runtime.output_dir), "hydra.sweep.dir")

    def on_job_end(self, config: Any, **kwargs: Any) -> None:
        release(str(config.hydra.runtime.output_dir))

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        _give_back(str(config.hydra.run.dir))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        _give_back(str(config.hydra.sweep.dir))


def _give_back(folder: str) -> None:
    """The command's hold ends with it (an app run twice in one process, as tests do)."""
    release(folder)
    _root.clear()
