"""Model-written code, tried as an attacker would (issue #12), never reaches outside its sandbox.

Every route runs under each kernel isolation this machine has (bubblewrap; landlock alone) and
twice: with the in-process guard (the default) and without it (`policy=False`), so each test
shows that the kernel boundary holds by itself. Each test checks a marker outside the sandbox:
a file outside that must not appear or change, a loopback server that must see no request, a
secret that must not appear in the results, or a bystander process that must not be touched.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hydragent.sandbox import (
    PythonSession,
    SandboxResult,
    SandboxSpec,
    SandboxUnavailable,
    resolve,
    run_python,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")
CANARY = f"canary-{uuid.uuid4().hex}"
KINDS = ("bwrap", "landlock")


def kernel_spec(kind: str) -> SandboxSpec:
    try:
        return resolve({"kind": kind})
    except SandboxUnavailable as error:
        pytest.skip(f"sandbox={kind} is not usable here: {error}")


@dataclass
class Outside:
    """Host paths the code must not reach: a folder with a secret and a victim file."""

    folder: Path
    secret: Path
    victim: Path

    def untouched(self) -> None:
        assert sorted(p.name for p in self.folder.iterdir()) == ["secret.txt", "victim.txt"]
        assert self.victim.read_text() == "keep me"


@pytest.fixture
def outside(tmp_path: Path) -> Outside:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(CANARY)
    (folder / "victim.txt").write_text("keep me")
    return Outside(folder, folder / "secret.txt", folder / "victim.txt")


Attack = Callable[..., SandboxResult]


@pytest.fixture(
    params=[(k, p) for k in KINDS for p in (True, False)],
    ids=[f"{k}-{'guarded' if p else 'kernel-only'}" for k in KINDS for p in (True, False)],
)
def attack(request: pytest.FixtureRequest) -> Attack:
    kind, policy = request.param
    spec = kernel_spec(kind)

    def run(*attempts: str, **options: object) -> SandboxResult:
        result = run_python(
            tries(*attempts), sandbox=spec, policy=policy, authorized_imports=None, **options
        )
        assert CANARY not in json.dumps(result.dict()), "a secret reached the results"
        return result

    return run


def tries(*attempts: str) -> str:
    """One program running every attempt, each on its own, so one refusal stops none."""
    blocks = [
        f"try:\n{textwrap.indent(textwrap.dedent(a).strip(), '    ')}\n"
        f"except BaseException as error:\n    print('attempt {i}:', repr(error))\n"
        for i, a in enumerate(attempts)
    ]
    return "\n".join(blocks)


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the runner's user, started with the secret in its environment."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, "HYDRAGENT_TEST_SECRET": CANARY},
    )
    # A runner that is itself niced (CI may run at nice 19) gives the bystander no headroom for
    # a renice to show; where allowed (as root), bring it back to 0.
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, process.pid, 0)
    yield process
    process.kill()
    process.wait()


@dataclass
class Loopback:
    port: int
    hits: list[str]


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    """A TCP and a UDP server on 127.0.0.1 (same port) that log every contact."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    hits: list[str] = []

    def serve(sock: socket.socket, kind: str) -> None:
        while True:
            try:
                if kind == "tcp":
                    sock.accept()[0].close()
                else:
                    sock.recvfrom(100)
            except OSError:
                return
            hits.append(kind)

    for sock, kind in ((tcp, "tcp"), (udp, "udp")):
        threading.Thread(target=serve, args=(sock, kind), daemon=True).start()
    yield Loopback(port, hits)
    tcp.close()
    udp.close()


# --- files ------------------------------------------------------------------------------------


def test_str_subclasses_that_lie_reach_no_file(attack: Attack, outside: Outside) -> None:
    attack(
        f"""
        class Lying(str):
            def startswith(self, *args):
                return True
            def endswith(self, *args):
                return True
        print(open(Lying({str(outside.secret)!r})).read())
        """,
        f"open(Lying({str(outside.folder / 'lying.txt')!r}), 'w').write('x')",
        f"import os; os.remove(Lying({str(outside.victim)!r}))",
    )
    outside.untouched()


def test_fspath_objects_that_change_their_answer_reach_no_file(
    attack: Attack, outside: Outside
) -> None:
    attack(
        f"""
        class Flip:
            calls = 0
            def __fspath__(self):
                Flip.calls += 1
                return 'notes.txt' if Flip.calls % 2 else {str(outside.secret)!r}
        for _ in range(4):
            try:
                print(open(Flip()).read())
            except OSError as error:
                print(error)
        """,
        f"""
        import os
        class Target:
            def __fspath__(self):
                return {str(outside.victim)!r}
        os.remove(Target())
        """,
    )
    outside.untouched()


def test_dir_fd_arguments_reach_no_file(attack: Attack, outside: Outside) -> None:
    folder = str(outside.folder)
    attack(
        f"import os; d = os.open({folder!r}, os.O_RDONLY | os.O_DIRECTORY)",
        "print(os.read(os.open('secret.txt', os.O_RDONLY, dir_fd=d), 100))",
        "os.rename('victim.txt', 'moved.txt', src_dir_fd=d, dst_dir_fd=d)",
        "os.remove('victim.txt', dir_fd=d)",
        "os.close(os.open('created.txt', os.O_CREAT | os.O_WRONLY, dir_fd=d))",
        "os.link('victim.txt', 'linked.txt', src_dir_fd=d, dst_dir_fd=d)",
        "os.mkdir('made', dir_fd=d)",
    )
    outside.untouched()


def test_a_thread_changing_directory_mid_check_reaches_no_file(
    attack: Attack, outside: Outside
) -> None:
    attack(
        f"""
        import os, threading
        home, stop = os.getcwd(), []
        def flip():
            while not stop:
                for folder in ({str(outside.folder)!r}, home):
                    try:
                        os.chdir(folder)
                    except OSError:
                        pass
        threading.Thread(target=flip, daemon=True).start()
        for _ in range(3000):
            try:
                open('raced.txt', 'w').write('x')
                os.remove('victim.txt')
            except OSError:
                pass
        stop.append(1)
        """
    )
    outside.untouched()


def test_c_extensions_that_open_files_reach_no_file(attack: Attack, outside: Outside) -> None:
    folder = str(outside.folder)
    shm_name = f"/hydragent-{uuid.uuid4().hex}"
    attack(
        f"""
        import sqlite3
        db = sqlite3.connect(':memory:')
        db.execute("ATTACH DATABASE '{folder}/attached.db' AS x")
        db.execute('CREATE TABLE x.t (v)')
        db.commit()
        """,
        f"""
        import sqlite3
        print(sqlite3.connect('file:{outside.secret}?mode=ro', uri=True).execute('select 1'))
        """,
        f"import readline; readline.write_history_file('{folder}/history')",
        f"import readline; readline.read_history_file('{outside.secret}')\n"
        "print(readline.get_history_item(1))",
        f"""
        import _posixshmem, os
        fd = _posixshmem.shm_open({shm_name!r}, os.O_CREAT | os.O_RDWR, 0o600)
        os.write(fd, b'x')
        """,
    )
    outside.untouched()
    assert not Path("/dev/shm" + shm_name).exists()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the shared library")
def test_a_shared_library_written_and_loaded_reaches_no_file(
    attack: Attack, outside: Outside, tmp_path: Path
) -> None:
    source = tmp_path / "evil.c"
    marker = outside.folder / "from-native-code.txt"
    source.write_text(
        "#include <fcntl.h>\n#include <unistd.h>\n"
        "__attribute__((constructor)) static void run(void) {\n"
        f'  int fd = open("{marker}", O_CREAT | O_WRONLY, 0644);\n'
        '  if (fd >= 0) { write(fd, "x", 1); close(fd); }\n'
        f'  unlink("{outside.victim}");\n'
        "}\n"
    )
    library = tmp_path / "evil.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", library, source], check=True)
    payload = base64.b64encode(library.read_bytes()).decode()
    attack(
        f"import base64; open('evil.so', 'wb').write(base64.b64decode({payload!r}))",
        "import ctypes, os; ctypes.CDLL(os.path.abspath('evil.so'))",
        "import _imp, importlib.machinery, os\n"
        "_imp.create_dynamic(importlib.machinery.ModuleSpec('evil', None, "
        "origin=os.path.abspath('evil.so')))",
        "import importlib.util\n"
        "spec = importlib.util.spec_from_file_location('evil', 'evil.so')\n"
        "importlib.util.module_from_spec(spec)",
        f"import ctypes; ctypes.CDLL(None).open({str(marker).encode()!r}, 0o101, 0o644)",
        f"import ctypes; ctypes.CDLL(None).unlink({str(outside.victim).encode()!r})",
    )
    outside.untouched()


def test_modules_reached_through_allowed_ones_reach_nothing(
    attack: Attack, outside: Outside
) -> None:
    folder = str(outside.folder)
    attack(
        f"import random; random._os.system('touch {folder}/shell.txt')",
        f"import random; print(random._os.read(random._os.open({str(outside.secret)!r}, 0), 99))",
        f"import collections; collections._sys.modules['os'].remove({str(outside.victim)!r})",
        f"""
        import subprocess
        subprocess.run(['/bin/sh', '-c', 'touch {folder}/subprocess.txt'])
        """,
        f"""
        class Name(str):
            pass
        posixsubprocess = __import__(Name('_posixsubprocess'))
        import subprocess
        subprocess.run(['/usr/bin/touch', '{folder}/posixsubprocess.txt'])
        """,
        f"""
        class Name(str):
            pass
        interpreters = __import__(Name('_xxsubinterpreters'))
        interpreter = interpreters.create()
        interpreters.run_string(interpreter, "open('{folder}/sub.txt', 'w').write('x')")
        """,
        f"import os; os.execv('/bin/sh', ['sh', '-c', 'touch {folder}/exec.txt'])",
    )
    outside.untouched()


def test_the_runners_folders_are_out_of_sight(attack: Attack) -> None:
    """The repository (with conf/local and its keys), the runner's folder, home and /tmp are
    not in the sandbox's view; only the interpreter, its libraries and site-packages are."""
    repo = Path(__file__).resolve().parents[1]
    result = attack(
        f"print(open({str(repo / 'pyproject.toml')!r}).read())",
        f"import os; print(os.listdir({str(repo)!r}))",
        f"import os; print(os.listdir({os.getcwd()!r}))",
        f"import os; print(os.listdir({str(Path.home())!r}))",
        "import os; print(os.listdir('/tmp'))",
        "import sys, os; print(os.listdir(os.path.dirname(sys.prefix)))",
    )
    assert "[build-system]" not in result.stdout
    assert "'pyproject.toml'" not in result.stdout and "'tests'" not in result.stdout


# --- processes --------------------------------------------------------------------------------


def test_other_processes_cannot_be_signalled_or_limited(
    attack: Attack, bystander: subprocess.Popen[bytes]
) -> None:
    pid = bystander.pid
    affinity = os.sched_getaffinity(pid)
    files = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    attack(
        f"import os; os.kill({pid}, 9)",
        f"import os; os.killpg({pid}, 9)",
        f"import os, signal; signal.pidfd_send_signal(os.pidfd_open({pid}), 9)",
        f"import ctypes; ctypes.CDLL(None).kill({pid}, 9)",
        f"import ctypes; ctypes.CDLL(None).syscall(424, ctypes.CDLL(None).syscall(434, {pid}, 0),"
        " 9, 0, 0)",
        f"import os; os.sched_setaffinity({pid}, {{0}})",
        f"import resource; resource.prlimit({pid}, resource.RLIMIT_NOFILE, (1, 1))",
        "import os; os.kill(os.getppid(), 9)",
    )
    time.sleep(0.1)
    assert bystander.poll() is None, "the bystander was killed"
    assert os.sched_getaffinity(pid) == affinity
    assert resource.prlimit(pid, resource.RLIMIT_NOFILE) == files


def test_other_processes_cannot_be_reniced(
    attack: Attack, bystander: subprocess.Popen[bytes]
) -> None:
    """Each renice aims above the victims' current nice value, so a success would show."""
    pid = bystander.pid
    bystander_nice = os.getpriority(os.PRIO_PROCESS, pid)
    runner_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())
    if bystander_nice == 19:
        pytest.skip("the runner runs at nice 19 and may not lower a bystander's: no renice shows")
    higher = 19
    broad = bystander_nice + 1  # broad attempts ask for little, in case the boundary is broken
    attack(
        f"import os; os.setpriority(os.PRIO_PROCESS, {pid}, {higher})",
        f"import os; os.setpriority(os.PRIO_USER, os.getuid(), {broad})",
        f"import os; os.setpriority(os.PRIO_PGRP, 0, {broad})",
        f"import os; os.setpriority(os.PRIO_PROCESS, {os.getpid()}, {broad})",
    )
    assert os.getpriority(os.PRIO_PROCESS, pid) == bystander_nice
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == runner_nice


def test_the_runner_receives_no_signal(attack: Attack) -> None:
    """SIGUSR1 aimed at this (the runner's) process by every route: the handler never runs.
    (Broadcasts, kill(-1) and killpg, are left out: were the boundary broken, they would hit
    every process of this user, not only the runner.)"""
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: received.append(number))
    runner = os.getpid()
    try:
        attack(
            f"import os, signal; os.kill({runner}, signal.SIGUSR1)",
            "import os, signal; os.kill(os.getppid(), signal.SIGUSR1)",
            f"import signal; signal.pidfd_send_signal(__import__('os').pidfd_open({runner}), 10)",
            f"import ctypes; ctypes.CDLL(None).kill({runner}, 10)",
            f"import ctypes; ctypes.CDLL(None).syscall(129, {runner}, 10, 0)",  # rt_sigqueueinfo
        )
        time.sleep(0.2)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert received == []


def test_no_capability_reaches_the_host(attack: Attack) -> None:
    """Each attempt would be harmless if it succeeded (same hostname, the current time), so
    the marker is the kernel's refusal of every one, also for a runner that is root."""
    hostname = socket.gethostname()
    result = attack(
        f"import socket; socket.sethostname({hostname!r}); print('ESCAPED sethostname')",
        "import time\ntime.clock_settime(time.CLOCK_REALTIME, time.time())\nprint('ESCAPED clock')",
        "import os; os.chown('.', 1, 1); print('ESCAPED chown')",
        "import os; os.setuid(1); print('ESCAPED setuid')",
        "import os; os.memfd_create('hidden'); print('ESCAPED memfd')",
    )
    assert "ESCAPED" not in result.stdout, result.stdout
    assert socket.gethostname() == hostname


def test_the_runners_environment_is_out_of_reach(
    attack: Attack, bystander: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret sits in this process's environment and in a bystander's /proc/PID/environ;
    the fixture fails the test if it appears anywhere in the result."""
    monkeypatch.setenv("HYDRAGENT_TEST_SECRET", CANARY)
    attack(
        "import os; print(dict(os.environ))",
        "print(open('/proc/self/environ').read())",
        f"print(open('/proc/{bystander.pid}/environ').read())",
        f"print(open('/proc/{os.getpid()}/environ').read())",
        "import os; print(open(f'/proc/{os.getppid()}/environ').read())",
        """
        import os
        for pid in os.listdir('/proc'):
            if pid.isdigit():
                try:
                    print(open(f'/proc/{pid}/environ').read())
                except OSError:
                    pass
        """,
        f"import os; print(os.listdir('/proc/{bystander.pid}/'))",
    )


def test_a_fork_bomb_starts_no_process(attack: Attack) -> None:
    started = time.monotonic()
    result = attack(
        "import os\nfor _ in range(1000):\n    os.fork()",
        "import subprocess; subprocess.Popen(['/bin/sleep', '60'])",
        "import multiprocessing; multiprocessing.Process(target=print).start()",
    )
    assert result.stdout.count("attempt") == 3, result.stdout
    assert time.monotonic() - started < 5


def test_a_thread_bomb_ends_at_its_caps_and_the_runner_carries_on(attack: Attack) -> None:
    """Threads count against the address-space cap (and RLIMIT_NPROC, for a runner that is not
    root); whichever hits first, or the deadline, ends the step, never the runner."""
    started = time.monotonic()
    result = attack(
        """
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        """,
        timeout_s=3,
    )
    assert result.timed_out or "can't start new thread" in result.stdout, result
    assert time.monotonic() - started < 5
    assert attack("print('next step')").stdout.endswith("next step\n")


# --- network ----------------------------------------------------------------------------------


def test_a_server_on_loopback_is_unreachable(attack: Attack, loopback: Loopback) -> None:
    port = loopback.port
    attack(
        f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1).send(b'x')",
        f"import socket; socket.create_connection(('localhost', {port}), timeout=1)",
        f"import socket; socket.socket(socket.AF_INET6).connect(('::1', {port}))",
        f"import socket\n"
        f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))",
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=1)",
        f"import ctypes, socket, struct\n"
        f"libc = ctypes.CDLL(None)\n"
        f"fd = libc.socket(2, 1, 0)\n"
        f"address = struct.pack('<HH4s8x', 2, socket.htons({port}), bytes([127, 0, 0, 1]))\n"
        f"print(fd, libc.connect(fd, address, 16))",
    )
    time.sleep(0.2)
    assert loopback.hits == []


# --- the parent ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_child_flooding_its_pipe_cannot_stall_the_runner(kind: str) -> None:
    """The child writes tool calls and never reads the replies: the parent's writes would
    block forever; instead the step ends at its deadline."""
    flood = textwrap.dedent(
        """
        import json, os, struct, sys
        message = json.dumps({'type': 'tool_call', 'name': 'echo', 'args': ['x' * 60000],
                              'kwargs': {}}).encode()
        while True:
            os.write(int(sys.argv[2]), struct.pack('>I', len(message)) + message)
        """
    )
    spec = kernel_spec(kind)
    with PythonSession(timeout_s=1, sandbox=spec, tools={"echo": lambda text: text}) as session:
        started = time.monotonic()
        result = session.run(flood)
        assert result.timed_out and time.monotonic() - started < 2.5
        assert session.run("1 + 1").value == "2"


@pytest.mark.parametrize(
    "forgery",
    [
        "[" * 100_000 + "]" * 100_000,  # nesting deep enough to exhaust the parent's recursion
        '{"type": "result", "error": null, "stdout": 7}',  # fields of the wrong type
        '{"type": "tool_call", "name": ["echo"]}',
    ],
    ids=["deep-nesting", "wrong-types", "bad-tool-call"],
)
def test_forged_protocol_messages_end_the_child_not_the_runner(forgery: str) -> None:
    code = (
        "import os, struct, sys\n"
        f"data = {forgery!r}.encode()\n"
        "os.write(int(sys.argv[2]), struct.pack('>I', len(data)) + data)\n"
        "import time; time.sleep(30)"
    )
    with PythonSession(sandbox=kernel_spec("bwrap"), timeout_s=10) as session:
        started = time.monotonic()
        result = session.run(code)
        assert not result.ok and "protocol" in (result.error or "")
        assert time.monotonic() - started < 5
        assert session.run("1 + 1").value == "2"


def test_endless_slow_tool_calls_still_end_at_a_ceiling() -> None:
    """Time in the parent's tools does not count against a step, but only up to a ceiling."""
    with PythonSession(
        sandbox=kernel_spec("bwrap"), timeout_s=0.5, tools={"slow": lambda: time.sleep(0.2)}
    ) as session:
        started = time.monotonic()
        result = session.run("while True:\n    slow()")
    assert result.timed_out and time.monotonic() - started < 0.5 * 5 + 1


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("kind", KINDS)
def test_the_deadline_kills_every_sandbox_process_within_a_second(kind: str) -> None:
    spec = kernel_spec(kind)
    code = (
        "import signal, threading\n"
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "def spin():\n    while True:\n        pass\n"
        "for _ in range(3):\n    threading.Thread(target=spin, daemon=True).start()\n"
        "spin()"
    )
    with PythonSession(timeout_s=1, sandbox=spec) as session:
        session.run("1")
        assert session._process is not None
        pids = [session._process.pid, session._inner_pid]
        started = time.monotonic()
        result = session.run(code)
    assert result.timed_out
    while any(_alive(pid) for pid in pids if pid) and time.monotonic() < started + 2.0:
        time.sleep(0.01)
    assert time.monotonic() - started < 2.0, "a sandbox process outlived its deadline by 1 s"


@pytest.mark.parametrize("kind", KINDS)
def test_the_sandbox_dies_with_the_runner(kind: str, tmp_path: Path) -> None:
    """A runner killed mid-step leaves no sandbox process behind."""
    kernel_spec(kind)
    script = tmp_path / "runner.py"
    script.write_text(
        "import sys, threading\n"
        "from hydragent.sandbox import PythonSession, resolve\n"
        f"session = PythonSession(timeout_s=60, sandbox=resolve({{'kind': {kind!r}}}))\n"
        "session.run('1')\n"
        "print(session._inner_pid, flush=True)\n"
        "session.run('while True:\\n    pass')\n"
    )
    runner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    inner = int(runner.stdout.readline())
    assert _alive(inner)
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 1.0
    while _alive(inner) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(inner)


# --- choosing the sandbox ---------------------------------------------------------------------


def test_auto_picks_the_strongest_isolation_that_works() -> None:
    spec = resolve({"kind": "auto"})
    assert spec.name in KINDS and not spec.unsafe
    if shutil.which("bwrap") and resolve_or_none("bwrap"):
        assert spec.name == "bwrap"


def resolve_or_none(kind: str) -> SandboxSpec | None:
    try:
        return resolve({"kind": kind})
    except SandboxUnavailable:
        return None


def test_without_any_isolation_auto_fails_closed_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hydragent.sandbox import bwrap, choice

    def missing(name: str) -> str:
        raise bwrap.BwrapMissing(f"{name} is not installed")

    monkeypatch.setattr(choice, "tool", missing)
    monkeypatch.setattr(choice, "landlock_abi", lambda: 0)
    choice.probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable) as caught:
            resolve({"kind": "auto"})
    finally:
        choice.probe.cache_clear()
    message = str(caught.value)
    assert "\n" not in message
    for words in ("bubblewrap is not installed", "apt-get install bubblewrap", "sandbox=process"):
        assert words in message
    assert isinstance(caught.value, ValueError)


def test_process_must_be_chosen_and_warns_every_time(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        spec = resolve({"kind": "process"})
        resolve({"kind": "process"})
    assert spec.name == "process" and spec.unsafe
    assert sum("not a security boundary" in r.message for r in caplog.records) == 2


def test_a_wrong_sandbox_node_is_a_one_line_error() -> None:
    with pytest.raises(SandboxUnavailable, match=r"sandbox\.kind"):
        resolve({"kind": "docker"})
    with pytest.raises(SandboxUnavailable, match=r"sandbox\.memory"):
        resolve({"kind": "auto", "memory": 1})


# --- what the code can still do ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_ordinary_code_works_inside(kind: str) -> None:
    spec = kernel_spec(kind)
    code = (
        "import json, hashlib, tempfile, threading, decimal, sqlite3\n"
        "open('data.txt', 'w').write('hello')\n"
        "with tempfile.NamedTemporaryFile('w', delete=False) as handle:\n"
        "    handle.write('x')\n"
        "t = threading.Thread(target=print, args=('from a thread',)); t.start(); t.join()\n"
        # file locks are refused (they block host processes through read-only host files):
        # a file database opens without them, as the docs say
        "db = sqlite3.connect('file:local.db?nolock=1', uri=True)\n"
        "db.execute('create table t (v)'); db.commit()\n"
        "hashlib.sha256(open('data.txt', 'rb').read()).hexdigest()[:8]"
    )
    result = run_python(code, sandbox=spec, authorized_imports=None)
    assert result.ok, result.error
    assert result.value == "'2cf24dba'" and "from a thread" in result.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_the_work_folder_is_private_and_size_capped(kind: str) -> None:
    spec = kernel_spec(kind)
    with PythonSession(sandbox=spec, policy=False) as session:
        if kind == "bwrap":
            assert session.workdir is None  # a tmpfs of its own, gone with the process
        result = session.run("open('big.bin', 'wb').write(b'x' * (200 * 1024 * 1024))")
    assert not result.ok
    assert "No space left" in (result.error or "") or "File too large" in (result.error or "")


# --- HumanEval programs -----------------------------------------------------------------------


def _humaneval_sample(completion_check: str) -> tuple[str, object]:
    from hydragent.tasks.base import Sample

    sample = Sample(
        id="HumanEval/x",
        input="",
        target="",
        metadata={
            "prompt": "def add(a, b):\n",
            "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
            "entry_point": "add",
        },
    )
    return completion_check, sample


@pytest.mark.parametrize("kind", KINDS)
def test_humaneval_programs_keep_any_import_inside_the_isolation(kind: str) -> None:
    from hydragent.scorers.code import CodeExecScorer

    scorer = CodeExecScorer(sandbox=kernel_spec(kind))
    answer, sample = _humaneval_sample(
        "    import hashlib, numpy, fractions\n    return int(numpy.add(a, b))\n"
    )
    assert scorer.score(answer, sample) == {"pass@1": 1.0}


@pytest.mark.parametrize("kind", KINDS)
def test_a_humaneval_program_cannot_pass_by_skipping_or_escaping_its_tests(
    kind: str, outside: Outside
) -> None:
    from hydragent.scorers.code import CodeExecScorer

    scorer = CodeExecScorer(sandbox=kernel_spec(kind), timeout_s=3)
    for completion in (
        "    return 0\nfinal_answer('passed')\n",
        "    return 0\nimport os\nos._exit(0)\n",
        "    return 0\nraise SystemExit(0)\n",
        f"    return 0\nopen({str(outside.folder / 'x')!r}, 'w')\n",
        "    while True:\n        pass\n",
    ):
        answer, sample = _humaneval_sample(completion)
        assert scorer.score(answer, sample) == {"pass@1": 0.0}, completion
    outside.untouched()


# --- the sandbox node's limits ----------------------------------------------------------------


def test_the_sandbox_node_sets_the_limits_the_kernel_enforces() -> None:
    kernel_spec("bwrap")
    spec = resolve({"kind": "bwrap", "work_mb": 1, "max_open_files": 16, "site_packages": False})
    with PythonSession(sandbox=spec, policy=False) as session:
        full = session.run("open('big.bin', 'wb').write(b'x' * (2 * 1024 * 1024))")
        files = session.run("handles = [open('f%d' % i, 'w') for i in range(100)]")
        numpy = session.run("import numpy")
        stdlib = session.run("import json; json.dumps([1])")
    assert "No space left on device" in (full.error or "")
    assert "Too many open files" in (files.error or "")
    assert "No module named 'numpy'" in (numpy.error or "")
    assert stdlib.ok and stdlib.value == "'[1]'"
