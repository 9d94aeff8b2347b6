"""The seccomp filter is an allow-list (`hydragent.sandbox.syscalls`): what CPython, its
standard library and the common scientific packages need passes, in every mode; anything not
listed is refused, including calls the kernel adds later, and the partly safe calls pass only
with the arguments listed. Markers are read outside where the call would change the host."""

from __future__ import annotations

import ast
import errno
import os
import sys
import textwrap
import unittest

import pytest
import yaml

from hydragent.sandbox import syscalls
from sandbox_modes import MODES, attacked

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")
REFUSED = (errno.ENOSYS, errno.EPERM)

# What model-written code and HumanEval programs do: the measured workload of syscalls.py.
WORKLOAD = textwrap.dedent(
    """
    import asyncio, bz2, concurrent.futures, datetime, decimal, fractions, gzip, hashlib
    import json, lzma, os, pathlib, pickle, queue, random, re, secrets, select, shutil
    import sqlite3, statistics, tarfile, tempfile, threading, time, uuid, zipfile
    try:
        import numpy as np
    except ModuleNotFoundError:  # an unprivileged runner's system Python may lack it
        np = None
    json.loads(json.dumps({"a": [1, 2.5, None]})); re.findall(r"\\w+", "a b c")
    db = sqlite3.connect(":memory:"); db.execute("create table t(x)")
    db.executemany("insert into t values (?)", [(i,) for i in range(100)])
    assert db.execute("select sum(x) from t").fetchone() == (4950,)
    disk = sqlite3.connect("file:disk.db?nolock=1", uri=True)
    disk.execute("create table t(x)"); disk.commit()
    threads = [threading.Thread(target=sum, args=(range(10000),)) for _ in range(4)]
    [t.start() for t in threads]; [t.join() for t in threads]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(abs, range(-3, 0))) == [3, 2, 1]
    if np is not None:
        a = np.random.rand(100, 100); np.linalg.inv(a + np.eye(100)); np.fft.fft(a[0])
    async def pause():
        await asyncio.sleep(0.01)
        return 1
    assert asyncio.run(pause()) == 1
    q = queue.Queue(); q.put(1); q.get(timeout=1); threading.Event().wait(0.01)
    p = pathlib.Path("scratch"); p.mkdir(); (p / "f.txt").write_text("hi")
    shutil.copyfile(p / "f.txt", p / "g.txt")  # copy2 sets times: refused under landlock
    os.rename(p / "g.txt", p / "i.txt"); os.remove(p / "i.txt"); sorted(os.listdir(p))
    with tempfile.TemporaryDirectory(dir=".") as folder:
        open(os.path.join(folder, "x"), "w").write("x")
    with tempfile.NamedTemporaryFile(dir=".") as handle:
        handle.write(b"x"); handle.flush(); os.fsync(handle.fileno())
    with zipfile.ZipFile("z.zip", "w") as archive:
        archive.writestr("a", "b")
    with tarfile.open("t.tgz", "w:gz") as archive:
        archive.add("z.zip")
    with tarfile.open("t.tgz") as archive:
        archive.extractall("out")  # our own archive
    gzip.compress(b"x" * 1000); bz2.compress(b"x"); lzma.compress(b"x"); pickle.dumps([1, 2])
    os.urandom(8); secrets.token_hex(4); uuid.uuid4(); datetime.datetime.now().astimezone()
    time.perf_counter(); time.process_time(); time.thread_time(); time.sleep(0.001)
    os.cpu_count(); os.sched_getaffinity(0); os.isatty(1); open(os.devnull, "w").write("x")
    r, w = os.pipe(); os.write(w, b"x"); os.read(r, 1); select.select([r], [], [], 0)
    os.set_blocking(r, False); os.dup(r); os.fstat(r)
    statistics.mean([1, 2, 3]); decimal.Decimal(1) / 3; fractions.Fraction(1, 3)
    "ok"
    """
)


@pytest.mark.parametrize("mode", MODES)
def test_what_python_and_numpy_need_is_allowed(mode: str) -> None:
    """Fails when the allow-list refuses a call this workload needs (the list was derived by
    tracing it with strace inside the sandbox)."""
    with attacked(mode, memory_mb=1024, timeout_s=60) as session:
        step = session.run(WORKLOAD)
    assert step.ok, step.error
    assert step.value == "'ok'"


STDLIB_TESTS = ("test.test_math", "test.test_collections", "test.test_heapq", "test.test_bisect")
STDLIB_TESTS += ("test.test_fractions", "test.test_json.test_decode", "test.test_json.test_dump")
STDLIB_TESTS += ("test.test_re",)
STDLIB = f"""
import io, unittest
suite = unittest.defaultTestLoader.loadTestsFromNames({STDLIB_TESTS!r})
# multiprocessing (new processes) is refused by design; sre_* warnings depend on -W flags
skipped = ("gh94675", "deprecated_modules")
def keep(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from keep(test)
        elif not any(name in test.id() for name in skipped):
            yield test
outcome = unittest.TextTestRunner(stream=io.StringIO()).run(unittest.TestSuite(keep(suite)))
print([test.id() for test, _ in outcome.failures + outcome.errors])
outcome.testsRun
"""


def _stdlib_tests_exist() -> bool:
    try:
        unittest.defaultTestLoader.loadTestsFromName("test.test_bisect")
    except (ImportError, AttributeError):
        return False
    return True


@pytest.mark.skipif(not _stdlib_tests_exist(), reason="this Python has no test package")
@pytest.mark.parametrize("mode", ["bwrap-root", "landlock"])
def test_a_stdlib_test_subset_passes_inside(mode: str) -> None:
    with attacked(mode, memory_mb=1024, timeout_s=300, max_output_chars=100_000) as session:
        step = session.run(STDLIB)
    assert step.ok, step.error
    assert step.stdout.strip().splitlines()[-1] == "[]", step.stdout[-3000:]
    assert int(step.value or 0) > 400


REFUSALS = """
import ctypes, errno, fcntl, os, struct, threading
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return 0 if result >= 0 else ctypes.get_errno()
fd = os.open({visible!r}, os.O_RDONLY)
got = {{
    # calls no list names: from Linux 6.17 (file_setattr), and numbers not yet given out
    "file_setattr": errno_of(libc.syscall(469, -100, b"/", None, 0, 0)),
    "future": errno_of(libc.syscall(700, 0, 0, 0)),
    "io_setup": errno_of(libc.syscall(206, 1, ctypes.byref(ctypes.c_ulong(0)))),
    "inotify_init1": errno_of(libc.syscall(294, 0)),
    "fanotify_init": errno_of(libc.syscall(300, 0, 0)),
    "memfd_create": errno_of(libc.syscall(319, b"x", 0)),
    "flock": errno_of(libc.flock(fd, 2 | 4)),
    "socket": errno_of(libc.socket(2, 1, 0)),
    "fork": errno_of(libc.syscall(57)),
    # CLONE_NEWUSER | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM
    "clone_newuser": errno_of(libc.syscall(56, 0x10010900, 0, 0, 0, 0)),
    "ptrace": errno_of(libc.syscall(101, 0, 1, 0, 0)),
    # partly safe calls with their unsafe arguments
    "FS_IOC_SETFLAGS": errno_of(libc.ioctl(fd, 0x40086602, ctypes.byref(ctypes.c_long(0x40)))),
    "F_SETLEASE": errno_of(libc.fcntl(fd, 1024, 0)),
    "F_NOTIFY": errno_of(libc.fcntl(fd, 1026, 1)),
    "prctl_SET_DUMPABLE": errno_of(libc.prctl(4, 0, 0, 0, 0)),
    "prlimit_other": errno_of(libc.prlimit(1, 7, None, ctypes.byref((ctypes.c_ulong * 2)()))),
    "setxattr": errno_of(libc.fsetxattr(fd, b"user.x", b"1", 1, 0)),
}}
got
"""


@pytest.mark.parametrize("mode", MODES)
def test_calls_not_listed_and_unsafe_arguments_are_refused(mode: str) -> None:
    """file_setattr (new in Linux 6.17) set a host file's flags by path while the filter was a
    deny-list; FS_IOC_SETFLAGS did through a read-only descriptor."""
    from sandbox_modes import visible_file

    with attacked(mode) as session:
        step = session.run(REFUSALS.format(visible=visible_file(mode)))
    assert step.ok, step.error
    got = ast.literal_eval(step.value or "{}")
    assert {name: code for name, code in got.items() if code not in REFUSED} == {}


def test_each_call_is_allowed_one_way_only() -> None:
    """An unconditional allow would void a call's argument conditions (openat listed both ways
    let a set-user-ID file be made): the filter refuses to build such a list."""
    from hydragent.sandbox.seccomp import filter_bpf

    plain = {name for group in syscalls.ALLOWED.values() for name in group}
    for kind, extra, rules in (
        ("landlock", set(), syscalls.CONDITIONAL),
        ("bwrap", set(syscalls.BWRAP_ONLY), syscalls.CONDITIONAL + syscalls.BWRAP_CONDITIONAL),
    ):
        assert not (plain | extra) & {rule.name for rule in rules}
        assert filter_bpf(kind)
    assert "execve" not in syscalls.allowed_names("landlock")
    assert {"utimensat", "getxattr"} <= syscalls.allowed_names("bwrap")


def test_landlock_mode_leaks_exactly_the_documented_metadata_reads() -> None:
    """What landlock cannot hide without namespaces (stat and readlink of host paths) is stated,
    as the same list, where a user reads about `sandbox=landlock`."""
    from pathlib import Path

    from hydragent.sandbox.isolation import LANDLOCK_LEAKS, SandboxSpec

    root = Path(__file__).resolve().parents[1]
    places = {
        "docs/architecture.md": (root / "docs/architecture.md").read_text(),
        "conf/sandbox/landlock.yaml": (root / "conf/sandbox/landlock.yaml").read_text(),
        "validate": SandboxSpec("landlock").summary,
    }
    from hydragent import cli

    places["hydragent --help"] = cli.USAGE
    footer = yaml.safe_load((root / "conf/config.yaml").read_text())["hydra"]["help"]["footer"]
    places["hydragent run --help"] = footer
    for where, text in places.items():
        flat = " ".join(text.replace("#", " ").split())
        for leak in LANDLOCK_LEAKS:
            assert leak in flat, f"{where} does not state: {leak}"
    assert os.path.exists(root / "conf/sandbox/landlock.yaml")


LANDLOCK_METADATA = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return 0 if result >= 0 else ctypes.get_errno()
buffer = ctypes.create_string_buffer(512)
path = {visible!r}.encode()
{{
    "statfs": errno_of(libc.statfs(b"/", buffer)),
    "getxattr": errno_of(libc.getxattr(path, b"user.x", buffer, 512)),
    "listxattr": errno_of(libc.listxattr(path, buffer, 512)),
    "utimensat": errno_of(libc.utimensat(-100, path, None, 0)),
    "chmod": errno_of(libc.chmod(path, 0o644)),
    "inotify_init1": errno_of(libc.inotify_init1(0)),
}}
"""


def test_landlock_refuses_what_seccomp_can_of_host_metadata() -> None:
    """Landlock does not cover metadata: without namespaces, seccomp refuses every call that
    changes it, and the reads beyond stat and readlink (xattrs, file system statistics,
    inotify's names); the host file is unchanged (read outside)."""
    from sandbox_modes import visible_file

    victim = visible_file("landlock")
    before = os.stat(victim)
    with attacked("landlock") as session:
        step = session.run(LANDLOCK_METADATA.format(visible=victim))
    got = ast.literal_eval(step.value or "{}")
    assert got and {name: code for name, code in got.items() if code not in REFUSED} == {}
    after = os.stat(victim)
    assert (after.st_mtime_ns, after.st_ctime_ns, after.st_mode) == (
        before.st_mtime_ns,
        before.st_ctime_ns,
        before.st_mode,
    )
