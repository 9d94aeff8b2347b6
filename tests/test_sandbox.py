"""Model-written code runs in a locked-down child process (under `sandbox=auto`: bubblewrap):
every escape attempt is blocked and turned into a clear error the model can read, and the
runner carries on. tests/test_sandbox_isolation.py tries the kernel boundary itself.

On a machine without kernel isolation these run under `sandbox=process`: the messages come
from the in-process guard, which every option keeps as policy."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest

from hydragent import sandbox
from hydragent.sandbox import SandboxResult, SandboxSpec, SandboxUnavailable, resolve

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs POSIX rlimits")


def _strongest() -> SandboxSpec:
    try:
        return resolve({"kind": "auto"})
    except SandboxUnavailable:
        return resolve({"kind": "process"})


SPEC = _strongest()
run_python = partial(sandbox.run_python, sandbox=SPEC)
PythonSession = partial(sandbox.PythonSession, sandbox=SPEC)


def assert_blocked(result: SandboxResult, *words: str) -> None:
    assert not result.ok
    assert result.error is not None
    for word in words:
        assert word in result.error, result.error


def test_code_runs_and_reports_output_and_last_value() -> None:
    result = run_python("print('hello')\nx = 20\nx + 22")
    assert result.ok and result.stdout == "hello\n" and result.value == "42"
    assert "hello" in result.observation() and "42" in result.observation()


def test_final_answer_ends_the_step_with_its_value() -> None:
    result = run_python("final_answer({'total': 7})\nprint('never')")
    assert result.ok and result.is_final_answer
    assert result.final_answer == {"total": 7} and "never" not in result.stdout


def test_variables_persist_across_steps_of_a_session() -> None:
    with PythonSession(sandbox=resolve()) as session:
        assert session.run("numbers = [1, 2, 3]").ok
        assert session.run("numbers.append(4)\nsum(numbers)").value == "10"


def test_errors_become_readable_observations() -> None:
    result = run_python("x = 1\nraise ValueError('bad input')")
    assert_blocked(result, "ValueError", "line 2", "bad input")
    assert "Error: ValueError" in result.observation()


def test_reading_etc_passwd_is_blocked() -> None:
    assert_blocked(run_python("open('/etc/passwd').read()"), "sandbox blocked", "/etc/passwd")


def test_reading_through_pathlib_os_open_and_relative_paths_is_blocked() -> None:
    for code in (
        "import pathlib; pathlib.Path('/etc/passwd').read_text()",
        "import os; os.open('/etc/passwd', os.O_RDONLY)",
        "open('../../../../../../etc/passwd').read()",
        "import io; io.FileIO('/etc/passwd').read()",
    ):
        assert_blocked(run_python(code), "sandbox blocked")


def test_reading_proc_is_blocked() -> None:
    assert_blocked(run_python("open('/proc/self/environ').read()"), "sandbox blocked")


def test_writing_outside_the_working_folder_is_blocked(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')")
    assert_blocked(result, "sandbox blocked", "writing")
    assert not target.exists()


def test_writing_inside_the_working_folder_works(tmp_path: Path) -> None:
    result = run_python("open('notes.txt', 'w').write('kept')", workdir=str(tmp_path))
    assert result.ok and (tmp_path / "notes.txt").read_text() == "kept"


def test_symlinks_out_of_the_working_folder_are_blocked(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc/passwd")
    assert_blocked(run_python("open('link').read()", workdir=str(tmp_path)), "sandbox blocked")
    assert_blocked(run_python("import os; os.symlink('/etc/passwd', 'p')"), "symlink")


def test_changing_directory_out_of_the_working_folder_is_blocked() -> None:
    assert_blocked(run_python("import os; os.chdir('/')"), "sandbox blocked")


def test_deleting_files_outside_is_blocked(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    assert_blocked(run_python(f"import os; os.remove({str(victim)!r})"), "sandbox blocked")
    assert victim.exists()


def test_opening_a_network_socket_is_blocked() -> None:
    code = "import socket; s = socket.socket(); s.connect(('127.0.0.1', 80))"
    assert_blocked(run_python(code), "network")


def test_os_system_is_blocked() -> None:
    assert_blocked(run_python("import os; os.system('echo hi')"), "shell")


def test_subprocess_is_blocked() -> None:
    assert_blocked(run_python("import subprocess; subprocess.run(['ls'])"), "sandbox blocked")


def test_fork_is_blocked() -> None:
    assert_blocked(run_python("import os; os.fork()"), "fork")


def test_fork_bomb_is_blocked() -> None:
    assert_blocked(run_python("import os\nwhile True:\n    os.fork()"), "fork")


def test_killing_the_parent_is_blocked() -> None:
    assert_blocked(run_python("import os; os.kill(os.getppid(), 9)"), "signals")


def test_unaudited_kill_paths_are_removed() -> None:
    """pidfd_send_signal raises no audit event, so it is gone, and cannot be re-created."""
    assert_blocked(run_python("import os; os.pidfd_open(os.getppid())"), "pidfd_open")
    assert_blocked(run_python("import os; os.mkfifo('pipe')"), "mkfifo")
    recreate = (
        "import importlib.util\n"
        "posix = importlib.util.module_from_spec(importlib.util.find_spec('posix'))"
    )
    assert_blocked(run_python(recreate), "sandbox blocked")
    reimport = "import sys\ndel sys.modules['posix']\nimport posix"
    assert_blocked(run_python(reimport), "sandbox blocked")


def test_a_forged_protocol_message_cannot_exhaust_the_runner() -> None:
    code = "import os, sys\nos.write(int(sys.argv[2]), b'\\xff\\xff\\xff\\xff' + b'x' * 100)"
    assert_blocked(run_python(code), "protocol")


def test_ctypes_cannot_reach_memory_or_c_functions() -> None:
    for code in (
        "import ctypes; ctypes.CDLL('libc.so.6').system(b'id')",
        "import ctypes; ctypes.string_at(id(1), 8)",
        "import ctypes; ctypes.c_int.from_address(id(1))",
    ):
        assert_blocked(run_python(code), "ctypes")


def test_import_outside_the_allow_list_is_blocked() -> None:
    result = run_python("import os", authorized_imports=["math"])
    assert_blocked(result, "ImportError", "'os'", "math")
    assert run_python("import math; math.sqrt(16)", authorized_imports=["math"]).value == "4.0"


def test_dunder_import_and_importlib_tricks_are_blocked() -> None:
    assert_blocked(run_python("__import__('os')", authorized_imports=["math"]), "__import__")
    assert_blocked(
        run_python("import importlib", authorized_imports=["math"]), "ImportError", "importlib"
    )
    assert_blocked(run_python("import importlib; importlib.import_module('_posixsubprocess')"))


def test_introspection_through_dunders_is_blocked() -> None:
    for code in (
        "().__class__.__base__.__subclasses__()",
        "(lambda: 0).__globals__",
        "__builtins__",
        "getattr((), '__cla' + 'ss__')",
    ):
        assert_blocked(run_python(code), "sandbox blocked")


def test_eval_and_exec_of_built_strings_are_blocked() -> None:
    assert_blocked(run_python("eval('1 + 1')"), "eval")
    assert_blocked(run_python("exec('import os')"), "exec")


def test_bypassing_the_namespace_still_hits_the_audit_hook() -> None:
    """Even with the real builtins in hand, the OS-level effects stay blocked."""
    code = (
        "import operator\n"
        "real_builtins = operator.attrgetter('__self__')(print)\n"
        "real_builtins.exec('import os; os.system(\"id\")')"
    )
    assert_blocked(run_python(code), "shell")


def test_tracing_and_heap_walking_are_blocked() -> None:
    assert_blocked(run_python("import sys; sys.settrace(lambda *a: None)"), "tracing")
    assert_blocked(run_python("import gc; gc.get_objects()"), "heap")


def test_the_environment_holds_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    result = run_python("import os; print(sorted(os.environ))")
    assert result.ok and "OPENAI_API_KEY" not in result.stdout


def test_a_memory_bomb_hits_the_memory_limit() -> None:
    assert_blocked(run_python("x = bytearray(2 * 1024**3)", memory_mb=256), "memory")


def test_an_infinite_loop_is_killed_at_its_limit() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass", timeout_s=1)
    assert result.timed_out and "timed out" in (result.error or "")
    assert time.monotonic() - started < 5  # functional check that it was killed, not a benchmark


def test_an_infinite_loop_ignoring_signals_is_still_killed() -> None:
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass"
    assert run_python(code, timeout_s=1).timed_out


def test_busy_threads_are_killed_with_the_process() -> None:
    code = (
        "import threading\n"
        "def spin():\n    while True:\n        pass\n"
        "for _ in range(3):\n    threading.Thread(target=spin, daemon=True).start()\n"
        "while True:\n    pass"
    )
    assert run_python(code, timeout_s=1).timed_out


def test_the_cpu_limit_kills_a_step_even_before_the_wall_clock() -> None:
    with PythonSession(sandbox=resolve(), timeout_s=60, cpu_limit_s=1) as session:
        result = session.run("while True:\n    pass")
        assert result.timed_out and "CPU" in (result.error or "")
        assert session.run("1 + 1").value == "2"  # a fresh child takes over


def test_each_step_gets_its_own_cpu_budget() -> None:
    """CPU used by earlier steps never counts against a later one."""
    with PythonSession(sandbox=resolve(), timeout_s=30, cpu_limit_s=1) as session:
        for _ in range(3):  # about 0.6 s of CPU each: 1.8 s in all, over one step's budget
            busy = session.run(
                "import time\nstart = time.process_time()\n"
                "while time.process_time() - start < 0.6:\n    pass"
            )
            assert busy.ok, busy.error
        result = session.run("while True:\n    pass")
        assert result.timed_out and "CPU" in (result.error or "")


def test_printing_100_mb_is_truncated() -> None:
    result = run_python("print('x' * 100_000_000)", max_output_chars=1000)
    assert result.ok and result.output_truncated
    assert len(result.stdout) < 2000 and "truncated" in result.stdout


def test_a_session_recovers_after_a_timeout() -> None:
    with PythonSession(sandbox=resolve(), timeout_s=1) as session:
        session.run("x = 1")
        assert session.run("while True:\n    pass").timed_out
        result = session.run("print('alive')")
        assert result.ok and "alive" in result.stdout and "fresh session" in result.stdout


def test_the_child_exiting_is_an_observation_not_a_crash() -> None:
    assert_blocked(run_python("import os; os._exit(3)"), "died")
    assert_blocked(run_python("raise SystemExit(3)"), "SystemExit")


def test_code_can_call_tools_that_run_in_the_parent() -> None:
    with PythonSession(sandbox=resolve(), tools={"add": lambda a, b: a + b}) as session:
        assert session.run("add(2, b=3)").value == "5"


def test_the_temporary_working_folder_is_removed_on_close() -> None:
    """Without bwrap's private tmpfs, the work folder is a temporary folder on the host."""
    session = PythonSession(sandbox=resolve({"kind": "process"}))
    session.run("open('scratch.txt', 'w').write('x')")
    folder = Path(session.workdir)
    assert folder.exists()
    session.close()
    assert not folder.exists()


def _used_bytes(folder: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*"))


@pytest.mark.parametrize("kind", ["landlock", "process"])
def test_a_host_work_folder_is_capped_as_bwraps_tmpfs_is(kind: str) -> None:
    """Under landlock (or the process guard) the code writes to a host folder: many files
    below the per-file limit once filled the disk. A watcher kills the code past `work_mb`,
    also a thread left writing between steps, and the next step starts with an empty folder."""
    try:
        spec = resolve({"kind": kind, "work_mb": 4, "max_file_mb": 1})
    except SandboxUnavailable as error:
        pytest.skip(f"sandbox={kind} is not usable here: {error}")
    fill = (
        "def fill(prefix):\n"
        "    for i in range(2000):\n"
        "        open(f'{prefix}{i}', 'wb').write(b'x' * 1_000_000)\n"
    )
    with sandbox.PythonSession(sandbox=spec, timeout_s=30, max_file_mb=1) as session:
        folder = Path(str(session.workdir))
        result = session.run(fill + "fill('f')")
        assert not result.ok and "work folder grew past its cap of 4 MB" in str(result.error)
        assert _used_bytes(folder) == 0  # removed, and the session goes on
        listing = session.run("import os\nprint(len(os.listdir('.')))").stdout
        assert listing.endswith("in an empty folder.)\n0\n"), listing

        # a thread that starts writing once its step has ended: caught between steps (a
        # step whose own writes pass the cap fails as it ends, whatever the watcher saw)
        later = "def later():\n    time.sleep(0.5)\n    fill('g')\n"
        in_background = "threading.Thread(target=later).start()"
        started = session.run(f"import threading, time\n{fill}{later}{in_background}")
        assert started.ok, started.error
        time.sleep(2)  # between steps: nothing of the runner's is waiting on the child
        stopped_at = _used_bytes(folder)
        time.sleep(0.5)
        assert _used_bytes(folder) == stopped_at < 2000 * 1_000_000  # killed, not finished
        after = session.run("print('next')")
        assert "work folder grew past its cap" in str(after.error)
        assert _used_bytes(folder) == 0
