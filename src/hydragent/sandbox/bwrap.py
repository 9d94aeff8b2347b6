"""The bubblewrap command line: namespaces, a read-only view of the host, and never host root.

bwrap runs behind a short setup stage (`unshare -m`, then `mount`, run by `sh` in a mount
namespace of its own, so nothing of it reaches the host's mounts):

- the host's `/dev` is bound read-only (device nodes keep working: writes to a character
  device on a read-only mount still work, while utimensat, futimens, chown and setxattr on it
  fail with EROFS), and the sandbox's `/dev` holds only null, zero, full, random and urandom
  from there: the code cannot change a host device node's metadata, as any user or as root;
- the work folder is a tmpfs mounted there with `size=work_mb` and `nr_inodes` capped (bwrap's
  own `--tmpfs` has no inode cap);
- a root runner drops to uid/gid 65534 with no supplementary groups (`setpriv`) before bwrap
  builds its user namespace, so the code's host uid owns nothing; the folders that uid cannot
  reach (an interpreter under /root, 0700) are bound into the stage first, by root.
An unprivileged runner gets the same stage in a user namespace of its own (`unshare -r`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from hydragent.sandbox.paths import (
    INSIDE_CHILD_DIR,
    INSIDE_WORKDIR,
    MAX_WORK_ENTRIES,
    SYSTEM_LIB_DIRS,
    child_dir,
    child_env,
    python_dirs,
    reachable_by_others,
    site_dirs,
)

SANDBOX_UID = 65534  # "nobody", inside the user namespace and, for a root runner, on the host
DEVICES = ("null", "zero", "full", "random", "urandom")
FIX = (
    "install bubblewrap (apt-get install bubblewrap) and enable unprivileged user namespaces, "
    "or choose sandbox=process knowingly (unsafe)"
)


class BwrapMissing(RuntimeError):
    """A program the bwrap sandbox needs is not installed."""


@functools.cache
def tool(name: str) -> str:
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if found is None:
        raise BwrapMissing(f"{name} is not installed")
    return found


@functools.cache
def bwrap_features() -> frozenset[str]:
    """Options this bubblewrap understands (older releases lack --disable-userns)."""
    try:
        text = subprocess.run([tool("bwrap"), "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired, BwrapMissing):
        return frozenset()
    return frozenset(o for o in ("--disable-userns",) if o in text.stdout + text.stderr)


def stage_dir() -> str:
    """An empty folder of this user's, with the mount points the stage uses (`dev`, `work`,
    one per staged bind): each child's mount namespace mounts on them; the host never sees
    what is mounted there. Made once, so that a start runs no mkdir."""
    folder = Path(tempfile.gettempdir()) / f"hydragent-stage-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o755)
    info = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.geteuid():
        raise BwrapMissing(f"{folder} is not this user's folder")
    for path in (folder, folder / "dev", folder / "work"):
        path.mkdir(mode=0o755, exist_ok=True)
        if stat.S_IMODE(path.stat().st_mode) != 0o755:  # a umask of 077: uid 65534 reads it
            path.chmod(0o755)
    return str(folder)


def mount_point(stage: str, name: str, directory: bool) -> str:
    """A folder or an empty file in the stage to mount on."""
    path = Path(stage) / (("d" if directory else "f") + name)
    if directory:
        path.mkdir(mode=0o755, exist_ok=True)
    else:
        path.touch(mode=0o644, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != (0o755 if directory else 0o644):
        path.chmod(0o755 if directory else 0o644)
    return str(path)


def bwrap_command(
    work_mb: int, site_packages: bool, host_workdir: str | None, bpf_fd: int
) -> list[str]:
    """The whole command: the setup stage, then bwrap, ending where the interpreter's
    arguments go."""
    root = os.geteuid() == 0
    stage = stage_dir()  # a temporary folder's path: no spaces or quotes to escape
    mount = tool("mount")
    # the host's /dev read-only (rbind: a user namespace may not split it), in one command
    setup = [f"{mount} --rbind -o ro /dev {stage}/dev"]
    owner = SANDBOX_UID if root else 0  # the runner itself, in its own user namespace
    if host_workdir is None:
        size = work_mb * 1024 * 1024
        setup.append(
            f"{mount} -t tmpfs -o mode=0700,uid={owner},gid={owner},size={size},"
            f"nr_inodes={MAX_WORK_ENTRIES} hydragent-work {stage}/work"
        )
    else:
        if root:  # the code's host uid must be able to write the folder it was given
            os.chown(host_workdir, SANDBOX_UID, SANDBOX_UID)
        setup.append(f"{mount} --bind {shlex.quote(host_workdir)} {stage}/work")
    binds: list[tuple[str, str]] = []
    for path in python_dirs() + (site_dirs() if site_packages else []):
        binds.append((path, path))
    binds.append((child_dir(), INSIDE_CHILD_DIR))
    args = ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
    args += ["--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    args += ["--hostname", "sandbox"]
    if "--disable-userns" in bwrap_features():
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
    for index, (source, target) in enumerate(binds):
        if root and not reachable_by_others(source):  # bound here by root, read by 65534
            point = mount_point(stage, str(index), os.path.isdir(source))
            setup.append(f"{mount} --bind {shlex.quote(source)} {point}")
            source = point
        args += ["--ro-bind", source, target]
    # /proc read-only as a whole (a writable /proc/sys was reachable before); /dev a tmpfs of
    # its own holding read-only binds of five host device nodes, then read-only itself
    args += ["--proc", "/proc", "--remount-ro", "/proc", "--tmpfs", "/dev"]
    for device in DEVICES:
        args += ["--dev-bind", f"{stage}/dev/{device}", f"/dev/{device}"]
    for index, name in enumerate(("stdin", "stdout", "stderr")):
        args += ["--symlink", f"/proc/self/fd/{index}", f"/dev/{name}"]
    args += ["--symlink", "/proc/self/fd", "/dev/fd", "--remount-ro", "/dev"]
    args += ["--bind", f"{stage}/work", INSIDE_WORKDIR]
    args += ["--chdir", INSIDE_WORKDIR, "--remount-ro", "/", "--seccomp", str(bpf_fd)]
    drop = (
        [
            tool("setpriv"),
            f"--reuid={SANDBOX_UID}",
            f"--regid={SANDBOX_UID}",
            "--clear-groups",
            "--",
        ]
        if root
        else []
    )
    # the stage waits for the parent's go on stdin: the parent moves it into the child's
    # cgroups meanwhile (a cgroup move costs about 10 ms), so all it starts is born in them
    script = "set -e; read -r go; " + "; ".join(setup) + '; exec "$@" </dev/null'
    namespaces = ["-m"] if root else ["-r", "-m"]
    return [
        tool("unshare"), *namespaces, "--propagation", "private", "--",
        tool("sh"), "-c", script, "sh", *drop, tool("bwrap"), *args,
    ]  # fmt: skip
