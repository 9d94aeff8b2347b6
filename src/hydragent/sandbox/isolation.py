"""Where model-written code runs: the `sandbox=` config group, resolved to a way of launching
the child interpreter.

- `bwrap`: bubblewrap puts the child in its own user, PID, network, mount, IPC and UTS
  namespaces, as an unprivileged user, with a read-only view of only the interpreter, its
  standard library, the site-packages and the system libraries, a private size-capped tmpfs as
  its work folder, its own /proc, a minimal read-only /dev and an empty environment; the
  seccomp filter (`seccomp.py`) is loaded by bwrap before the interpreter starts, and the child
  adds landlock as a second layer.
- `landlock`: no namespaces; the child confines itself with landlock (files, TCP, signals and
  abstract sockets outside its domain) and the same seccomp filter, in an empty environment.
- `process`: the in-process guard alone (audit hook, import allow-list). Not a security
  boundary: chosen only explicitly, and every run logs a warning.

`auto` picks the strongest that works here (bwrap, then landlock) and otherwise fails closed.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import importlib.util
import logging
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

CHILD_SCRIPT = str(Path(__file__).with_name("_child.py"))
INSIDE_CHILD_DIR = "/sandbox/child"
INSIDE_WORKDIR = "/sandbox/work"  # not /work or /tmp: host paths bound inside may live there
SANDBOX_UID = 65534  # "nobody" inside the user namespace
LANDLOCK_MIN_ABI = 6  # signal and abstract-socket scoping; TCP rules came with 4
SYSTEM_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")
FIX = (
    "install bubblewrap (apt-get install bubblewrap) and enable unprivileged user namespaces, "
    "or choose sandbox=process knowingly (unsafe)"
)


class SandboxUnavailable(ValueError):
    """The chosen isolation cannot run on this machine; the message names what and the fix."""


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
        argv = [*bwrap_args(self.config, host_workdir, bpf_fd), python, "-I", "-S", "-B"]
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


def start_child(folder: str) -> str:
    """`python -c` code that runs the child from `folder`, as an imported module so that its
    cached bytecode is used (compiling it as a script took about 6 ms of every start)."""
    return f"import sys; sys.path.insert(0, {folder!r}); import _child; _child.main()"


@functools.cache
def child_dir() -> str:
    """A copy of the child with its bytecode, so that no start compiles its 600 lines again
    (about 6 ms of every start; PYTHONDONTWRITEBYTECODE may keep the package's own cache from
    existing). One folder per user and child version in the temporary folder, reused across
    runs (a killed runner leaves nothing new behind); used only when this user owns it and
    nobody else may write it."""
    source = Path(CHILD_SCRIPT).read_bytes()
    tag = hashlib.sha256(source + sys.version.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"hydragent-child-{os.geteuid()}-{tag}"
    if not _owned_private(folder):
        staging = Path(tempfile.mkdtemp(prefix="hydragent-child-"))
        script = staging / "_child.py"
        script.write_bytes(source)
        py_compile.compile(str(script), importlib.util.cache_from_source(str(script)), doraise=True)
        try:
            staging.rename(folder)
        except OSError:  # another process won the race, or a stranger's folder is in the way
            if not _owned_private(folder):
                atexit.register(shutil.rmtree, staging, True)
                return str(staging)
            shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


def _owned_private(folder: Path) -> bool:
    try:
        info = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def child_env(home: str) -> dict[str, str]:
    """Everything the child's environment holds: none of the runner's variables."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        **{var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def python_dirs() -> list[str]:
    """The interpreter, its standard library and its shared library, read-only."""
    paths = sysconfig.get_paths()
    candidates = [
        os.path.realpath(sys.executable),
        paths["stdlib"],
        paths["platstdlib"],
        sysconfig.get_config_var("LIBDIR") or "",
        sysconfig.get_config_var("DESTSHARED") or "",  # lib-dynload
    ]
    return _outermost(p for p in candidates if p and os.path.exists(p))


def site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return _outermost(p for p in (paths["purelib"], paths["platlib"]) if os.path.isdir(p))


def system_lib_dirs() -> list[str]:
    return [p for p in SYSTEM_LIB_DIRS if os.path.isdir(p) and not os.path.islink(p)]


def _outermost(paths: Any) -> list[str]:
    """Deduplicated real paths, leaving out any that another one already contains."""
    real = sorted({os.path.realpath(p) for p in paths})
    kept: list[str] = []
    for path in real:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


@functools.cache
def bwrap_features() -> frozenset[str]:
    """Options this bubblewrap understands (older releases lack --size and --disable-userns)."""
    binary = shutil.which("bwrap")
    if binary is None:
        return frozenset()
    try:
        text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(o for o in ("--size", "--disable-userns") if o in text.stdout + text.stderr)


def bwrap_args(config: SandboxConfig, host_workdir: str | None, bpf_fd: int) -> list[str]:
    binary = shutil.which("bwrap")
    if binary is None:
        raise SandboxUnavailable(f"sandbox=bwrap: bubblewrap is not installed; fix: {FIX}")
    features = bwrap_features()
    args = [binary, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
    args += ["--cap-drop", "ALL"]
    args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox"]
    if "--disable-userns" in features:
        args.append("--disable-userns")
    args.append("--clearenv")
    for name, value in child_env(INSIDE_WORKDIR).items():
        args += ["--setenv", name, value]
    for path in SYSTEM_LIB_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for path in python_dirs() + (site_dirs() if config.site_packages else []):
        args += ["--ro-bind", path, path]
    args += ["--ro-bind", child_dir(), INSIDE_CHILD_DIR]
    # /proc read-only as a whole: under a root runner the child's host uid is 0, and sysctls
    # check only that uid (a child without landlock opened /proc/sys/kernel/core_pattern for
    # writing); bwrap covers /proc/sys only where it finds it writable itself
    args += ["--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    if host_workdir is None:
        if "--size" in features:
            args += ["--size", str(config.work_mb * 1024 * 1024)]
        args += ["--tmpfs", INSIDE_WORKDIR]
    else:
        args += ["--bind", host_workdir, INSIDE_WORKDIR]
    args += ["--chdir", INSIDE_WORKDIR, "--remount-ro", "/", "--seccomp", str(bpf_fd)]
    return args


@functools.cache
def landlock_abi() -> int:
    """The kernel's landlock ABI version, 0 when it has none."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, VERSION)
    return max(int(version), 0)


def resolve(node: Mapping[str, Any] | SandboxConfig | None = None) -> SandboxSpec:
    """The sandbox a run gets, checked to work on this machine, or `SandboxUnavailable`."""
    try:
        config = (
            node if isinstance(node, SandboxConfig) else SandboxConfig.model_validate(node or {})
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "sandbox"
        raise SandboxUnavailable(f"sandbox.{where}: {first['msg']}") from None
    if config.kind == "process":
        log.warning(
            "sandbox=process: model-written code runs behind an in-process guard only, which is "
            "not a security boundary; use sandbox=auto (bubblewrap) for untrusted code"
        )
        return SandboxSpec("process", config)
    kinds = ("bwrap", "landlock") if config.kind == "auto" else (config.kind,)
    problems = []
    for kind in kinds:
        problem = _problem(kind)
        if problem is None:
            return SandboxSpec(kind, config)
        problems.append(f"{kind}: {problem}")
    raise SandboxUnavailable(
        f"sandbox={config.kind}: no kernel isolation available ({'; '.join(problems)}); fix: {FIX}"
    )


def as_spec(sandbox: SandboxSpec | Mapping[str, Any] | None) -> SandboxSpec:
    """What `sandbox=` constructor arguments accept: a resolved spec, a config node, or None
    (= `resolve({"kind": "auto"})`, which fails closed)."""
    return sandbox if isinstance(sandbox, SandboxSpec) else resolve(sandbox)


@functools.cache
def _problem(kind: str) -> str | None:
    """Why `kind` cannot run here (None = it ran a real probe step), cached per process."""
    from hydragent.sandbox.seccomp import SeccompUnavailable, filter_bpf
    from hydragent.sandbox.session import PythonSession, SandboxError

    if not sys.platform.startswith("linux"):
        return "needs Linux"
    try:
        filter_bpf()
    except SeccompUnavailable as error:
        return f"{error} (install libseccomp2 and pyseccomp)"
    if kind == "bwrap" and shutil.which("bwrap") is None:
        return "bubblewrap is not installed"
    if kind == "landlock" and landlock_abi() < LANDLOCK_MIN_ABI:
        return f"the kernel's landlock ABI is {landlock_abi()}, below {LANDLOCK_MIN_ABI}"
    try:
        with PythonSession(sandbox=SandboxSpec(kind), timeout_s=30) as session:  # type: ignore[arg-type]
            result = session.run("1 + 1")
    except SandboxError as error:
        detail = str(error)
        if "namespace" in detail or "uid map" in detail or "Operation not permitted" in detail:
            return f"user namespaces are not available to this user ({detail[-200:]})"
        return detail[-300:]
    if result.value != "2":
        return f"the probe step failed: {result.error or result.stdout}"
    return None
