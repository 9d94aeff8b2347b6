"""Where model-written code runs: the `sandbox=` config node and how each kind launches the
child interpreter (`choice.py` picks the kind; `session.py` runs the child).

- `bwrap`: bubblewrap puts the child in its own user, PID, network, mount, IPC and UTS
  namespaces, as an unprivileged user (host uid 65534 under a root runner), with a read-only
  view of only the interpreter, its standard library, the site-packages and the system
  libraries, a private tmpfs capped in size and inodes as its work folder, its own /proc, five
  read-only device nodes and an empty environment (`bwrap.py`); the seccomp allow-list
  (`syscalls.py`) is loaded by bwrap before the interpreter starts, and the child adds landlock
  as a second layer.
- `landlock`: no namespaces; the child confines itself with landlock (files, TCP, signals and
  abstract sockets outside its domain) and the seccomp allow-list without the calls that would
  reach host files' metadata, in an empty environment. What it cannot hide without namespaces:
  `LANDLOCK_LEAKS`.
- `process`: the in-process guard alone (audit hook, import allow-list). Not a security
  boundary: chosen only explicitly, and every run logs a warning.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hydragent.sandbox.bwrap import bwrap_command
from hydragent.sandbox.paths import (
    INSIDE_CHILD_DIR,
    INSIDE_WORKDIR,
    child_dir,
    child_env,
    python_dirs,
    site_dirs,
    start_child,
    system_lib_dirs,
)

LANDLOCK_MIN_ABI = 6  # signal and abstract-socket scoping; TCP rules came with 4
#: What `sandbox=landlock` cannot hide without namespaces: exactly these, stated in
#: docs/architecture.md, conf/sandbox/landlock.yaml and on validate's line.
LANDLOCK_LEAKS = (
    "stat() of any host path (existence, size, owner, mode, times)",
    "readlink() of any host symlink (its target)",
)


class SandboxConfig(BaseModel):
    """The `sandbox` config node (conf/sandbox/*.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # frozen: a SandboxSpec hashes

    kind: Literal["auto", "bwrap", "landlock", "process"] = "auto"
    work_mb: int = Field(64, ge=1, le=65536, description="size cap of the work folder")
    max_file_mb: int = Field(32, ge=1, le=65536, description="largest file the code may write")
    max_open_files: int = Field(64, ge=16, le=65536)
    max_threads: int = Field(64, ge=1, le=4096, description="RLIMIT_NPROC: threads of the child")
    site_packages: bool = Field(True, description="the environment's site-packages are readable")


@dataclass(frozen=True)
class Launch:
    """How to start one child: its command, environment and folder, and what it is told."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    workdir: str  # the work folder as the child sees it
    child: dict[str, Any] = field(default_factory=dict)  # extra settings sent to the child


@dataclass(frozen=True)
class SandboxSpec:
    """A resolved sandbox: `name` is what validate prints and each sample records."""

    name: Literal["bwrap", "landlock", "process"]
    config: SandboxConfig = field(default_factory=SandboxConfig)

    @property
    def unsafe(self) -> bool:
        return self.name == "process"

    @property
    def summary(self) -> str:
        """What validate prints for this sandbox."""
        if self.name == "landlock":
            return "landlock (visible to the code: " + "; ".join(LANDLOCK_LEAKS) + ")"
        if self.unsafe:
            return f"{self.name} (UNSAFE: no kernel isolation, chosen explicitly)"
        return self.name

    def launch(self, host_workdir: str | None, req_fd: int, resp_fd: int, bpf_fd: int) -> Launch:
        """The command for one child. `host_workdir` None = a private tmpfs (bwrap only)."""
        fds = [str(req_fd), str(resp_fd)]
        # outside bwrap the child arms its own parent-death signal (a Linux prctl)
        parent = [str(os.getpid())] if sys.platform.startswith("linux") else []
        limits: dict[str, Any] = {
            "max_file_mb": self.config.max_file_mb,
            "max_open_files": self.config.max_open_files,
            "nproc": None,
        }
        if self.name == "process":
            assert host_workdir is not None
            return Launch(
                argv=[sys.executable, "-I", "-B", "-c", start_child(child_dir()), *fds, *parent],
                env=child_env(host_workdir),
                cwd=host_workdir,
                workdir=host_workdir,
                # outside a user namespace RLIMIT_NPROC counts all the runner's processes, so
                # only "no new processes" is set, and root ignores it (the audit hook stays)
                child={**limits, "nproc": 0 if os.getuid() != 0 else None},
            )
        python = os.path.realpath(sys.executable)
        site = site_dirs() if self.config.site_packages else []
        if self.name == "landlock":
            assert host_workdir is not None
            return Launch(
                argv=[python, "-I", "-S", "-B", "-c", start_child(child_dir()), *fds, *parent],
                env=child_env(host_workdir),
                cwd=host_workdir,
                workdir=host_workdir,
                child={
                    **limits,
                    "site_paths": site,
                    "seccomp_fd": bpf_fd,
                    "landlock": landlock_rules(
                        [*python_dirs(), *site, *system_lib_dirs()], host_workdir
                    ),
                },
            )
        stage = bwrap_command(self.config.work_mb, self.config.site_packages, host_workdir, bpf_fd)
        argv = [*stage, python, "-I", "-S", "-B"]
        return Launch(
            argv=[*argv, "-c", start_child(INSIDE_CHILD_DIR), *fds],
            env={},
            cwd=None,
            workdir=INSIDE_WORKDIR,
            child={
                **limits,
                "nproc": self.config.max_threads,  # counted in the sandbox's user namespace
                "site_paths": site,
                # the second layer where the kernel has it; the namespaces are the first
                "landlock": landlock_rules(
                    [*python_dirs(), *site, *system_lib_dirs(), "/proc"], INSIDE_WORKDIR
                )
                if landlock_abi() > 0
                else None,
            },
        )


def landlock_rules(read: list[str], workdir: str) -> dict[str, list[str]]:
    """What landlock lets the child touch: the given trees read-only, the work folder
    read-write, the harmless devices; nothing else (no TCP, no signals or abstract sockets
    outside the sandbox)."""
    return {
        "read": [*read, "/etc/ld.so.cache"],
        "write": [workdir],
        "devices": ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"],
    }


@functools.cache
def landlock_abi() -> int:
    """The kernel's landlock ABI version, 0 when it has none."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, VERSION)
    return max(int(version), 0)
