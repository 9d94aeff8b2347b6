"""What the parent holds the child to from outside, where the child cannot lift it.

- cgroups, where this process may make them (a root runner): a pids cgroup capped at
  `max_threads` (the kernel exempts host root from RLIMIT_NPROC) and a memory cgroup capped at
  the child's memory, its work folder and a kernel allowance: it charges what the kernel
  allocates for the code (inodes, xattrs, pipe buffers, page tables), which no rlimit counts;
- a watcher thread per child, every 0.1 s: the CPU time of the step (RLIMIT_CPU is re-armed
  where the parent may raise it; this holds everywhere) and, for a host work folder (landlock,
  process), its size and entries.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
WATCH_S = 0.1  # how often the watcher measures the child
KERNEL_ALLOWANCE_MB = 64  # kernel memory a child may hold beyond its own memory and work folder
KILL_WAIT_S = 1.0
REAP_WAIT_S = 0.2  # for bwrap to reap its init after a kill, before it is killed itself


def cgroup_bases(controller: str) -> list[Path]:
    """This process's own cgroup for a controller: cgroup v1's, then the unified one."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    bases = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            bases.append(Path("/sys/fs/cgroup") / controller / path.lstrip("/"))
        elif controllers == "":
            bases.append(Path("/sys/fs/cgroup") / path.lstrip("/"))
    return [b for b in bases if b.is_dir()]


def prepare(tag: int, max_threads: int, memory_mb: int) -> list[Path]:
    """Make a pids and a memory cgroup for one child, with their limits, where this process
    may (each cap in the first hierarchy that takes it). Made while the child starts, so that
    a start does not wait for it; `attach` moves the child in before its first step."""
    made: list[Path] = []
    limits = {
        "pids": {"pids.max": str(max_threads)},
        "memory": {
            "memory.limit_in_bytes": str(memory_mb * 1024 * 1024),  # v1
            "memory.max": str(memory_mb * 1024 * 1024),  # v2
            "memory.swap.max": "0",
        },
    }
    for controller, files in limits.items():
        for base in cgroup_bases(controller):
            shared = base / f"hydragent-sandbox-{os.getpid()}-{tag}"
            folder = shared if shared in made else _new_cgroup(base, tag)  # v2: one for both
            if folder is None:
                continue
            written = False
            for name, value in files.items():
                if (folder / name).exists():
                    with contextlib.suppress(OSError):
                        (folder / name).write_text(value)
                        written = True
            if not written:
                if folder not in made:
                    remove_cgroup(folder)
                continue
            if folder not in made:
                made.append(folder)
            break
    return made


def attach(folders: list[Path], pid: int) -> list[Path]:
    """Move the interpreter (while it has one thread) into the prepared cgroups; those that
    refuse it are removed. Returns the folders to remove at close."""
    kept = []
    for folder in folders:
        try:
            if pid <= 0:
                raise OSError("no interpreter to attach")
            (folder / "cgroup.procs").write_text(str(pid))
        except OSError:
            remove_cgroup(folder)
            continue
        kept.append(folder)
    return kept


def _new_cgroup(base: Path, pid: int) -> Path | None:
    for stale in base.glob("hydragent-sandbox-*-*"):  # left by runners that were killed
        if not Path(f"/proc/{stale.name.split('-')[2]}").exists():
            remove_cgroup(stale, tries=1)
    folder = base / f"hydragent-sandbox-{os.getpid()}-{pid}"
    try:
        folder.mkdir()
    except OSError:
        return None
    return folder


def remove_cgroup(folder: Path, tries: int = 20) -> None:
    """Remove a child's cgroup once its tasks are gone (they leave it as they exit)."""
    for _ in range(tries):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def cpu_used(pid: int) -> float:
    """CPU seconds the process (all its threads) has used; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def folder_too_big(folder: str, limit_bytes: int, max_entries: int) -> bool:
    """Whether a host work folder holds more than `limit_bytes` or `max_entries` entries."""
    used, entries = 0, 0
    folders = [folder]
    while folders:
        with contextlib.suppress(OSError), os.scandir(folders.pop()) as listing:
            for entry in listing:
                entries += 1
                with contextlib.suppress(OSError):
                    used += entry.stat(follow_symlinks=False).st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                if used > limit_bytes or entries > max_entries:
                    return True
    return False


def inner_pid(pid: int, bwrap: bool) -> int | None:
    """The host pid of the interpreter (under bwrap, a grandchild: bwrap, its init, python),
    so that `prlimit` and the watcher reach the process that runs the code."""
    if not bwrap:
        return pid
    for _ in range(2):
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        if len(children) != 1:
            return None
        pid = int(children[0])
    return pid


def kill_tree(process: subprocess.Popen[bytes] | None, pidfd: int, init_pidfd: int) -> None:
    """SIGKILL the interpreter (through its pidfd: no pid reuse), bwrap's init (the PID
    namespace, and every process in it, dies with it) and the process group, then reap them
    and close both pidfds."""
    if pidfd >= 0:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    if init_pidfd >= 0:
        # the namespace's init first, so that bwrap reaps it and exits by itself: killed
        # first, bwrap left it a zombie of the host's init for seconds after the run
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(init_pidfd, signal.SIGKILL)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=REAP_WAIT_S)
        os.close(init_pidfd)
    if process is not None and process.returncode is None:  # once reaped, the pid is free
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=KILL_WAIT_S)
    if pidfd >= 0:
        select.select([pidfd], [], [], KILL_WAIT_S)  # readable once the process is gone
        os.close(pidfd)
