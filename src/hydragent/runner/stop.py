"""Stopping cleanly on SIGINT or SIGTERM, in a single run and in sweeps.

One process-wide `requested` event is the only thing a signal handler sets while samples run:
the sample loop sees it within 50 ms, starts no sample, abandons the ones in flight (they are
not recorded: a resume runs them again), closes the results file (every line whole) and writes
summary.json with `interrupted: true`; the runner's request path refuses every new model call
from then on (`check`). The job then raises `Interrupted`, a BaseException, so Hydra's launchers
do not catch it as a failed job and start the next one.

Where no sample loop runs in this process (a joblib or submitit sweep's parent, or a job still
building its model), the command waits for its jobs by their folder locks, not by guessing from
the process tree: every job holds its folder's OS lock (runner/lock.py) from its start until its
summary is written and it ends, so the processes holding a lock under the command's run or
sweep folder are exactly the jobs in flight. The handler sends them the signal (only them: a
launcher's controller or idle worker that got it would kill its jobs on its own clock) and
waits until no lock there is held, up to `JOBS_GRACE_S`, then raises `Interrupted`. A job in a
launcher's worker writes its interrupted summary and ends its process (`in_launcher_worker`).
The CLI then reaps: it kills every descendant and every process still holding a job's lock, and
waits until they are gone, so nothing writes after the command returns; the command is a child
subreaper, so a job whose launcher process died first is still its descendant. It prints what
was done and the command that resumes (exit 130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 0.5  # how long killed children get to disappear
JOBS_GRACE_S = 5.0  # how long the jobs in flight get to write their interrupted summaries
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
    _become_subreaper()
    current = os.environ.get("PYTHONWARNINGS", "")
    if TRACKER_WARNING not in current:
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [current, TRACKER_WARNING]))


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _become_subreaper() -> None:
    """Orphans below this process are re-parented to it (Linux, prctl PR_SET_CHILD_SUBREAPER):
    a job whose launcher process ended first stays a descendant the stop can kill."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def linger(exit_code: int) -> NoReturn:
    """A stopped job's last act in a launcher's worker: its summary is on disk (unless it
    was stopped while building, before its samples began), so it lets go of its folder's
    lock (which tells the command it is done) and waits to be killed. Ending the process
    instead would break a loky pool, whose manager then kills the other workers, jobs still
    writing their summaries among them; returning would let the worker take the next job.
    It ends by itself once the command is gone, or after a bound."""
    from hydragent.runner import lock

    for number in SIGNALS:  # a second signal must not cut the wait short
        signal.signal(number, signal.SIG_IGN)
    sys.stdout.flush()
    sys.stderr.flush()
    lock.release_all()
    command = int(os.environ.get(COMMAND_PID) or 0)
    deadline = time.monotonic() + JOBS_GRACE_S + 5.0
    while command and time.monotonic() < deadline:
        try:
            os.kill(command, 0)
        except OSError:
            break
        time.sleep(0.1)
    os._exit(exit_code)


def in_launcher_worker() -> bool:
    """True in a process a sweep launcher started for a job (joblib, submitit): the command's
    own process is another one."""
    owner = os.environ.get(COMMAND_PID)
    return owner is not None and owner != str(os.getpid())


def _handler(number: int, frame: Any) -> None:
    _state["signum"] = _state["signum"] or number
    requested.set()
    if _state["loops"]:
        forward(number)
        return  # the sample loop winds down by itself within 50 ms
    if not in_launcher_worker():
        wait_for_jobs(number)  # a sweep's jobs write their interrupted summaries
    raise Interrupted(number)


def jobs_in_flight() -> dict[Path, int]:
    """Folder -> PID of every other process holding a job lock under the command's folder:
    a job holds it from its start until it has written its summary and ended."""
    from hydragent.runner import lock

    root = lock.run_root()
    found: dict[Path, int] = {}
    if root is None:
        return found
    for path in Path(root).rglob(lock.LOCK_FILE):
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            pid = lock.holder(descriptor)
        except OSError:
            pid = None
        finally:
            os.close(descriptor)
        if pid and pid != os.getpid():
            found[path.parent] = pid
    return found


RESEND_S = 0.5  # how often a job still holding its lock is told again


def wait_for_jobs(number: int, bound_s: float = JOBS_GRACE_S) -> None:
    """Send `number` to every job in flight (and to any that starts meanwhile) and wait until
    none holds its lock, up to `bound_s`. A job still holding its lock is told again every
    RESEND_S: a job takes its lock before it installs its handlers, and a signal in between
    goes to the launcher's (submitit's ignores SIGTERM: "Bypassing signal SIGTERM"), so the
    job would run on until the bound. Told again, it stops; a second signal changes nothing
    for a job that is already stopping."""
    told: dict[int, float] = {}
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        holders = set(jobs_in_flight().values())
        if not holders:
            return
        now = time.monotonic()
        for pid in holders:
            if now - told.get(pid, -RESEND_S) >= RESEND_S:
                with contextlib.suppress(OSError):
                    os.kill(pid, number)
                told[pid] = now
        time.sleep(0.02)


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
    """End the stop: every job in flight gets its bounded wait (a single run's own children
    were told by the handler), then every descendant and every process still holding a job's
    lock is killed, and this waits up to `grace_s` until they are gone."""
    wait_for_jobs(signum())
    for pid in set(_workers()) | set(jobs_in_flight().values()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while (_workers() or jobs_in_flight()) and time.monotonic() < deadline:
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
    """How a stopped sweep's jobs stand: each folder this command started (its Hydra config
    written since the start) either has a summary from this command or was stopped before
    writing one (while it was starting: a resume runs it whole)."""
    import json

    since = started.replace(microsecond=0)  # finished_at has whole seconds
    finished = interrupted = unwritten = 0
    for config in root.glob("**/.hydra/config.yaml"):
        folder = config.parent.parent
        if folder == root or _mtime(config) < since.timestamp():
            continue
        try:
            summary = json.loads((folder / "summary.json").read_text())
            fresh = datetime.fromisoformat(summary["finished_at"]) >= since
        except (OSError, ValueError, KeyError, TypeError):
            summary, fresh = {}, False
        if not fresh:
            unwritten += 1
        elif summary.get("interrupted"):
            interrupted += 1
        else:
            finished += 1
    parts = [f"{finished} job(s) finished", f"{interrupted} interrupted"]
    if unwritten:
        parts.append(f"{unwritten} stopped before writing a summary")
    return (
        f"{', '.join(parts)} in this run (an interrupted job's summary.json says interrupted: "
        "true; a resume runs what no job recorded); jobs not started have no folder yet"
    )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
