"""Issue #20: what model code could still do to the host, tried in each mode (bwrap under a root
runner, bwrap under an unprivileged runner, landlock), each with a marker read outside the
sandbox, and a control showing the attack works without the sandbox where that is safe.

- host device nodes and host files keep their metadata (times, owner, ACL, file flags);
- the code never runs as host root under bwrap, and owns no host file;
- every rlimit's hard value equals its soft one, and CPU burnt between steps is stopped;
- kernel-held resources are capped: AIO, xattrs, inodes, pipe buffers;
- no host process is blocked or delayed through a lock or lease on a file the code can see.
"""

from __future__ import annotations

import ast
import ctypes
import errno
import fcntl
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hydragent.sandbox.paths import MAX_WORK_ENTRIES
from sandbox_modes import MODES, attacked, limits, visible_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_NODUMP_FL = 0x80086601, 0x40086602, 0x40
FILE_SETATTR = 469  # Linux 6.17
# an ACL equal to mode 0666: user::rw-, group::rw-, other::rw-
ACL = struct.pack("<I", 2) + b"".join(
    struct.pack("<HHI", tag, 6, 0xFFFFFFFF) for tag in (0x01, 0x04, 0x20)
)
METADATA_ATTACK = """
import ctypes, fcntl, json, os, struct
libc = ctypes.CDLL(None, use_errno=True)
acl = {acl!r}
done = []
def attempt(name, action):
    try:
        action()
        done.append(name)
    except OSError:
        pass
for path in {paths!r}:
    info = os.stat(path)
    attempt(path + " utimensat", lambda: os.utime(path))
    fd = os.open(path, os.O_WRONLY if path == "/dev/null" else os.O_RDONLY)
    attempt(path + " futimens", lambda: os.utime(fd))
    attempt(path + " chown", lambda: os.chown(path, info.st_uid, info.st_gid))
    attempt(path + " acl", lambda: os.setxattr(path, "system.posix_acl_access", acl))
    flags = ctypes.c_long(0x40)
    if libc.ioctl(fd, 0x40086602, ctypes.byref(flags)) == 0:
        done.append(path + " FS_IOC_SETFLAGS")
    attr = struct.pack("<QIIII", 0x80, 0, 0, 0, 0)
    if libc.syscall(469, -100, path.encode(), attr, len(attr), 0) == 0:
        done.append(path + " file_setattr")
    os.close(fd)
print(json.dumps(done))
"""


def host_metadata(path: str) -> tuple[object, ...]:
    info = os.stat(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        flags = ctypes.c_long(0)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)  # type: ignore[call-overload]
        value = flags.value
    except OSError:
        value = None
    finally:
        os.close(fd)
    return (info.st_ctime_ns, info.st_mtime_ns, info.st_uid, info.st_gid, info.st_mode, value)


@pytest.mark.parametrize("mode", MODES)
def test_host_device_nodes_and_files_keep_their_metadata(mode: str) -> None:
    """Under a root runner the code owned the host's /dev nodes (bwrap binds them): utimensat,
    futimens, chown to the same owner and an ACL changed them; file_setattr and FS_IOC_SETFLAGS
    set the nodump flag on a host file by path or through a read-only descriptor."""
    victim = visible_file(mode)
    before = {path: host_metadata(path) for path in (*DEVICES, victim)}
    xattrs = {path: os.listxattr(path) for path in (*DEVICES, victim)}
    paths = [*DEVICES, victim]
    with attacked(mode) as session:
        step = session.run(METADATA_ATTACK.format(acl=ACL, paths=paths))
    assert step.ok, step.error
    assert json.loads(step.stdout) == []
    assert {path: host_metadata(path) for path in before} == before
    assert {path: os.listxattr(path) for path in xattrs} == xattrs


def test_control_the_metadata_attack_works_without_the_sandbox(tmp_path: Path) -> None:
    """The same code run on the host against a scratch file of its own changes it."""
    scratch = tmp_path / "scratch"
    scratch.write_text("x")
    before = host_metadata(str(scratch))
    time.sleep(0.01)
    code = METADATA_ATTACK.format(acl=ACL, paths=[str(scratch)])
    done = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True).stdout)
    assert f"{scratch} utimensat" in done and host_metadata(str(scratch)) != before


def test_a_root_runners_code_runs_as_an_unprivileged_host_user() -> None:
    """Ownership made impossible, not forbidden call by call: host uid and gid 65534, no
    supplementary groups, no capabilities (read from the host's /proc)."""
    if os.geteuid() != 0:
        pytest.skip("a root runner's property")
    with attacked("bwrap-root", memory_mb=256) as session:
        step = session.run("1")
        assert step.inner is not None
        status = Path(f"/proc/{step.inner}/status").read_text()
        assert session.session is not None
        memory = [
            c for c in session.session._cgroups if "memory" in str(c) or _has(c, "memory.max")
        ]
        for cgroup in memory:  # kernel memory the code causes is charged and capped here
            limit = _read(cgroup, "memory.limit_in_bytes") or _read(cgroup, "memory.max")
            assert limit == str((256 + 64 + 64) * 1024 * 1024)
            assert str(step.inner) in _read(cgroup, "cgroup.procs")
    fields = dict(line.split(":", 1) for line in status.splitlines())
    assert fields["Uid"].split() == ["65534"] * 4
    assert fields["Gid"].split() == ["65534"] * 4
    assert fields["Groups"].strip() == ""
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0


def _has(folder: Path, name: str) -> bool:
    return (folder / name).exists()


def _read(folder: Path, name: str) -> str:
    try:
        return (folder / name).read_text().strip()
    except OSError:
        return ""


RAISE_LIMITS = """
import resource
raised = []
for name in dir(resource):
    if name.startswith("RLIMIT_"):
        which = getattr(resource, name)
        soft, hard = resource.getrlimit(which)
        for wanted in ((hard, hard), (resource.RLIM_INFINITY, resource.RLIM_INFINITY)):
            try:
                resource.setrlimit(which, wanted)
                if resource.getrlimit(which)[0] != soft:
                    raised.append(name)
            except (ValueError, OSError):
                pass
raised
"""


@pytest.mark.parametrize("mode", MODES)
def test_every_rlimit_is_hard_and_cpu_burnt_between_steps_is_stopped(mode: str) -> None:
    """The code raised its RLIMIT_CPU soft limit to an unlimited hard one, and two threads
    burnt 7.9 s of CPU between steps."""
    with attacked(mode, cpu_limit_s=1) as session:
        step = session.run(RAISE_LIMITS)
        assert step.value == "[]", step
        assert step.inner is not None
        unequal = {name: v for name, v in limits(step.inner).items() if v[0] != v[1]}
        assert unequal == {}
        burn = "import threading\ndef spin():\n    while True:\n        pass\n"
        burn += "for _ in range(2):\n    threading.Thread(target=spin, daemon=True).start()\n"
        used = _cpu(step.inner)
        step = session.run(burn)
        assert step.ok and step.inner is not None
        deadline = time.monotonic() + 30  # two threads on a loaded two-core machine
        while _alive(step.inner) and time.monotonic() < deadline:
            assert _cpu(step.inner) < used + 1 + 0.6, "threads kept burning CPU between steps"
            time.sleep(0.05)
        assert not _alive(step.inner)
        told = session.run("1")  # the next step hears why, and the one after runs afresh
        after = session.run("2")
    assert "CPU time limit" in (told.error or ""), told
    assert after.value == "2" and "fresh session" in after.stdout


def _alive(pid: int) -> bool:
    """Running, not a zombie (a landlock child stays one until the session reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


KERNEL_RESOURCES = """
import ctypes, fcntl, os
libc = ctypes.CDLL(None, use_errno=True)
context = ctypes.c_ulong(0)
got = {}
got["io_setup"] = libc.syscall(206, 32768, ctypes.byref(context))
params = ctypes.create_string_buffer(120)
got["io_uring_setup"] = libc.syscall(425, 8, params)
open("tagged", "w").close()
try:
    os.setxattr("tagged", "user.big", b"x" * 4000)
    got["setxattr"] = 0
except OSError:
    got["setxattr"] = -1
reader, writer = os.pipe()
try:
    got["F_SETPIPE_SZ"] = fcntl.fcntl(writer, 1031, 1 << 20)
except OSError:
    got["F_SETPIPE_SZ"] = -1
kept = (reader, writer)
made = 0
try:
    for index in range(MANY):
        open("f%d" % index, "w").close()
        made += 1
except OSError:
    pass
got["files"] = made
got
"""


def _aio_nr() -> int:
    return int(Path("/proc/sys/fs/aio-nr").read_text())


@pytest.mark.parametrize("mode", MODES)
def test_kernel_held_resources_are_capped(mode: str) -> None:
    """io_setup took 32,768 of the host's 65,536 AIO slots; 768 MB of user xattrs in the
    64 MB tmpfs raised host slab by 839 MB; 200,000 empty files raised it by 249 MB; pipe
    buffers can be grown to 1 MB each. Markers: the host's aio-nr, the xattrs and inode count
    of the work folder and the pipe's size, all read from outside."""
    aio_before = _aio_nr()
    code = KERNEL_RESOURCES.replace("MANY", str(MAX_WORK_ENTRIES * 2))
    with attacked(mode, timeout_s=60) as session:
        step = session.run(code)
        inner = step.inner
        if inner is not None:  # landlock: the watcher may have killed it for its folder
            assert _aio_nr() <= aio_before + 16  # other processes' own use, not 32,768
            folder = session.work_folder(inner)
            if (folder / "tagged").exists():
                assert os.listxattr(folder / "tagged") == []
            stats = os.statvfs(folder)
            if mode.startswith("bwrap"):
                assert stats.f_files - stats.f_ffree <= MAX_WORK_ENTRIES + 1
            pipes = [fd for fd in Path(f"/proc/{inner}/fd").iterdir() if "pipe" in _link(fd)]
            for fd in pipes:
                with open(fd, "rb", buffering=0) as handle:
                    assert fcntl.fcntl(handle, 1032) <= 65536  # F_GETPIPE_SZ
    if step.ok:
        got = ast.literal_eval(step.value or "{}")
        assert got["io_setup"] == -1 and got["io_uring_setup"] == -1
        assert got["setxattr"] == -1 and got["F_SETPIPE_SZ"] == -1
        assert got["files"] <= MAX_WORK_ENTRIES
    else:
        assert "work folder" in (step.error or ""), step.error  # landlock's watcher


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


LOCKS = """
import fcntl, os, struct
fd = os.open({path!r}, os.O_RDONLY)
refused = []
READ_LOCK = struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0)
for name, action in (
    ("flock", lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)),
    ("lockf", lambda: fcntl.fcntl(fd, fcntl.F_SETLK, READ_LOCK)),
    ("ofd", lambda: fcntl.fcntl(fd, 37, READ_LOCK)),
    ("lease", lambda: fcntl.fcntl(fd, 1024, fcntl.F_RDLCK)),
):
    try:
        action()
    except OSError:
        refused.append(name)
held = fd
refused
"""


def host_waits(path: str) -> float:
    """Seconds a host process spends taking a write lock and opening the file for writing."""
    started = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # a lease would make this wait or fail
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    return time.monotonic() - started


@pytest.mark.parametrize("mode", MODES)
def test_no_host_process_waits_on_a_lock_taken_inside(mode: str, tmp_path: Path) -> None:
    """A read lease on a read-only bound file made a host open(O_WRONLY) wait 3.9 s (up to the
    45 s lease-break time); flock and lockf on read-only descriptors made the host's own locks
    fail. The host takes its locks on the same file while the sandbox holds the descriptor."""
    victim = visible_file(mode)
    with attacked(mode) as session:
        step = session.run(LOCKS.format(path=victim))
        assert step.value == "['flock', 'lockf', 'ofd', 'lease']", step
        assert host_waits(victim) < 0.5


def test_control_a_lock_taken_without_the_sandbox_blocks_the_host(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("x")
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKS.format(path=str(victim)) + "\nprint(refused, flush=True)\n"
         "import time; time.sleep(30)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "[]"
        with pytest.raises(OSError) as caught:
            host_waits(str(victim))
        assert caught.value.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        holder.kill()
        holder.wait()
