"""Stopping cleanly on SIGINT or SIGTERM, in a single run and in sweeps.

One process-wide `requested` event is the only thing a signal handler sets while samples run:
the sample loop sees it within 50 ms, starts no sample, abandons the ones in flight (they are
not recorded: a resume runs them again), closes the results file (every line whole) and writes
summary.json with `interrupted: true`; the runner's request path refuses every new model call
from then on (`check`). The job then raises `Interrupted`, a BaseException, so Hydra's launchers
do not catch it as a failed job and start the next one.

Where no sample loop runs in this process (a joblib or submitit sweep's parent, or a job still
building its model), the handler forwards the signal to every child process, gives them up to
`GRACE_S` to end, and raises `Interrupted`. A job in a launcher's worker process writes its
interrupted summary and then ends its process (`in_launcher_worker`), so the parent's wait
ends as soon as every job has recorded its stop. The CLI then reaps: every descendant still
alive after `GRACE_S` is killed, so no worker outlives the command by more than about 2 s,
and it prints what was done and the command that resumes (exit 130 for SIGINT, 143 for
SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 1.0  # how long children get to finish their records before they are killed
requested = threading.Event()
_state: dict[str, Any] = {"signum": None, "loops": 0, "installed": 0}
_state_lock = threading.Lock()


class Interrupted(BaseException):
    """The run was stopped by a signal; `summary` and `output_dir` when a job was stopped."""

    def __init__(
        self, signum: int, summary: dict[str, Any] | None = None, output_dir: Path | None = None
    ) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.summary = summary
        self.output_dir = output_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return (type(self), (self.signum, self.summary, self.output_dir))


class RunStoppedError(RuntimeError):
    """A model call asked for after the stop: it is never sent."""


def signum() -> int:
    return int(_state["signum"] or signal.SIGINT)


def check() -> None:
    """Refuse a new model call once a stop was requested (the runner's request path)."""
    if requested.is_set():
        raise RunStoppedError("the run is stopping: no new model call starts")


COMMAND_PID = "HYDRAGENT_COMMAND_PID"  # set by the CLI; launcher workers inherit it


TRACKER_WARNING = "ignore::UserWarning:multiprocessing.resource_tracker"


def command_started() -> None:
    """Mark this process as the command's own (launcher workers inherit the variable), and
    keep the resource tracker a launcher starts quiet: after a stop it would print a warning
    about the semaphores of the workers that were ended."""
    os.environ[COMMAND_PID] = str(os.getpid())
    current = os.environ.get("PYTHONWARNINGS", "")
    if TRACKER_WARNING not in current:
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [current, TRACKER_WARNING]))


def in_launcher_worker() -> bool:
    """True in a process a sweep launcher started for a job (joblib, submitit): the command's
    own process is another one."""
    owner = os.environ.get(COMMAND_PID)
    return owner is not None and owner != str(os.getpid())


def _handler(number: int, frame: Any) -> None:
    _state["signum"] = _state["signum"] or number
    requested.set()
    forward(number)
    if _state["loops"]:
        return  # the sample loop winds down by itself within 50 ms
    deadline = time.monotonic() + GRACE_S  # a sweep's workers finish their summaries
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.02)
    raise Interrupted(number)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for SIGINT and SIGTERM (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _state["installed"]:  # a new command (or a new job in a worker): no stop yet
        requested.clear()
        _state["signum"] = None
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    for number in SIGNALS:
        signal.signal(number, _handler)
    _state["installed"] += 1
    try:
        yield
    finally:
        _state["installed"] -= 1
        for number, handler in previous.items():
            signal.signal(number, handler)


class Recording:
    """While a job runs samples and writes their summary, a signal only sets `requested`
    (the loop winds down by itself, and the summary is written whole); `close` is idempotent,
    so the job can end it once its summary is on disk and again in its cleanup."""

    def __init__(self) -> None:
        self.open = True
        with _state_lock:
            _state["loops"] += 1

    def close(self) -> None:
        if self.open:
            self.open = False
            with _state_lock:
                _state["loops"] -= 1


def descendants(root: int | None = None) -> list[int]:
    """Every live process below `root` (this one by default), read from /proc."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _workers() -> list[int]:
    """The descendants a stop ends. A multiprocessing/loky resource tracker is left alone:
    it exits by itself when this process does, and killing it first makes the launcher start
    a new one that prints tracebacks about resources it never saw."""
    found = []
    for pid in descendants():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in command:
            found.append(pid)
    return found


def forward(number: int) -> None:
    for pid in _workers():
        with contextlib.suppress(OSError):
            os.kill(pid, number)


def reap(grace_s: float = GRACE_S) -> None:
    """Give the children `grace_s` to end, then kill whatever is left of them."""
    deadline = time.monotonic() + grace_s
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in _workers():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 0.5
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.02)


def signal_name(number: int) -> str:
    return signal.Signals(number).name


def stop_lines(stopped: Interrupted, given: list[str], started: datetime) -> list[str]:
    """The command's last lines after a stop: what was done, then the exact command that
    resumes (the overrides as typed, secrets masked, into the same run or sweep folder)."""
    import shlex

    from hydragent.runner import lock
    from hydragent.secrets import mask_override

    sweep = bool({"-m", "--multirun"} & set(given))
    root = lock.run_root() or stopped.output_dir
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    name = signal_name(stopped.signum)
    if sweep and root is not None:
        lines = [f"stopped by {name}: sweep {root}: {_sweep_progress(Path(root), started)}"]
    elif stopped.summary:
        counts, resumed = stopped.summary["counts"], stopped.summary.get("resumed", 0)
        ran = counts["ok"] + counts["error"] - resumed
        lines = [
            f"stopped by {name}: {counts['ok']} of {counts['total']} samples have results "
            f"({ran} run now, {counts['error']} errors), {counts['not_run']} not run; "
            f"{root}/summary.json says interrupted: true"
        ]
    else:
        lines = [f"stopped by {name} before any sample ran"]
    if root is not None:
        kept = [mask_override(a) for a in given if not a.startswith((f"{key}=", f"+{key}="))]
        command = shlex.join(["hydragent", "run", *kept, f"{key}={root}"])
        masked = " (put back the values shown as ***)" if "***" in command else ""
        lines.append(f"to resume: {command}{masked}")
    return lines


def _sweep_progress(root: Path, started: datetime) -> str:
    """How a stopped sweep's jobs stand, from their summaries written in this command."""
    import json

    finished = interrupted = 0
    for path in root.glob("*/summary.json"):
        try:
            summary = json.loads(path.read_text())
            if datetime.fromisoformat(summary["finished_at"]) < started:
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        interrupted += bool(summary.get("interrupted"))
        finished += not summary.get("interrupted")
    return (
        f"{finished} job(s) finished and {interrupted} interrupted in this run (their "
        "summary.json says interrupted: true); jobs not started have no folder yet"
    )
