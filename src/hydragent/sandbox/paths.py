"""What the child sees of the host: the interpreter, its libraries, the child script, and the
environment it starts in. Shared by every sandbox kind."""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import os
import py_compile
import shutil
import stat
import sys
import sysconfig
import tempfile
from collections.abc import Iterable
from pathlib import Path

CHILD_SCRIPT = str(Path(__file__).with_name("_child.py"))
INSIDE_CHILD_DIR = "/sandbox/child"
INSIDE_WORKDIR = "/sandbox/work"  # not /work or /tmp: host paths bound inside may live there
SYSTEM_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")


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
    nobody else may write it. It is world-readable (0755): a root runner's sandbox runs as an
    unprivileged user, who must read it."""
    source = Path(CHILD_SCRIPT).read_bytes()
    tag = hashlib.sha256(source + sys.version.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"hydragent-child-{os.geteuid()}-{tag}"
    if not owned_folder(folder):
        staging = Path(tempfile.mkdtemp(prefix="hydragent-child-"))
        staging.chmod(0o755)
        script = staging / "_child.py"
        script.write_bytes(source)
        script.chmod(0o644)
        cache = importlib.util.cache_from_source(str(script))
        py_compile.compile(str(script), cache, doraise=True)
        Path(cache).parent.chmod(0o755)
        Path(cache).chmod(0o644)
        try:
            staging.rename(folder)
        except OSError:  # another process won the race, or a stranger's folder is in the way
            if not owned_folder(folder):
                atexit.register(shutil.rmtree, staging, True)
                return str(staging)
            shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


def owned_folder(folder: Path) -> bool:
    """This user's own folder, which others may read but not write."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and stat.S_IMODE(info.st_mode) == 0o755
    )


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
    return outermost(p for p in candidates if p and os.path.exists(p))


def site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return outermost(p for p in (paths["purelib"], paths["platlib"]) if os.path.isdir(p))


def system_lib_dirs() -> list[str]:
    return [p for p in SYSTEM_LIB_DIRS if os.path.isdir(p) and not os.path.islink(p)]


def outermost(paths: Iterable[str]) -> list[str]:
    """Deduplicated real paths, leaving out any that another one already contains."""
    real = sorted({os.path.realpath(p) for p in paths})
    kept: list[str] = []
    for path in real:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def reachable_by_others(path: str) -> bool:
    """Whether a user who owns nothing (`other` permission bits) can reach and read `path`:
    every folder above it searchable, the path itself readable (and searchable, a folder)."""
    parts = Path(path).parts
    for depth in range(1, len(parts)):
        try:
            if not os.stat(Path(*parts[:depth])).st_mode & 0o001:
                return False
        except OSError:
            return False
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    needed = 0o005 if stat.S_ISDIR(mode) else 0o004
    return mode & needed == needed


#: files and folders a work folder may hold: the tmpfs's inode cap under bwrap (each inode is
#: kernel memory: 200,000 empty files raised host slab by 249 MB), the watcher's elsewhere
MAX_WORK_ENTRIES = 10_000
