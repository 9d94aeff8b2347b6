"""The three ways the sandbox runs that issue #20's tests try: bwrap under a root runner (how CI
runs), bwrap under an unprivileged runner (a real uid 1000 process, `setpriv`), and landlock.

`attacked(mode, steps)` runs code steps in one session of that mode and, between steps, hands
the test the interpreter's host pid, so that every marker is read outside the sandbox, by this
(root) test process: /proc/PID/limits, /proc/PID/root, the host's own files and inodes.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hydragent.sandbox import PythonSession, SandboxUnavailable, resolve

MODES = ("bwrap-root", "bwrap-unprivileged", "landlock")
# the interpreter must reach its own files as that user (the sandbox binds them by path)
CAN_RUN = "import os, sys; assert os.access(sys.executable, os.R_OK); import hydragent.sandbox"
UNPRIVILEGED_UID = 1000
SRC = str(Path(__file__).resolve().parents[1] / "src")
DRIVER = """
import json, sys
from hydragent.sandbox import PythonSession, resolve
options = json.loads(sys.argv[1])
with PythonSession(sandbox=resolve({"kind": "bwrap"}), **options) as session:
    for line in sys.stdin:
        result = session.run(json.loads(line))
        print(json.dumps({**result.dict(), "inner": session._inner_pid}), flush=True)
"""


@dataclass
class Step:
    """One step's result and the interpreter's host pid (None once it is gone)."""

    ok: bool
    stdout: str
    error: str | None
    value: str | None
    inner: int | None


class Attacked:
    """A live session the test drives step by step."""

    def __init__(self, session: PythonSession | None, runner: subprocess.Popen[str] | None):
        self.session, self.runner = session, runner

    def run(self, code: str) -> Step:
        if self.session is not None:
            result = self.session.run(code)
            return Step(
                result.ok, result.stdout, result.error, result.value, self.session._inner_pid
            )
        assert self.runner is not None and self.runner.stdin and self.runner.stdout
        self.runner.stdin.write(json.dumps(code) + "\n")
        self.runner.stdin.flush()
        line = self.runner.stdout.readline()
        assert line, "the unprivileged runner died"
        data = json.loads(line)
        return Step(data["ok"], data["stdout"], data["error"], data["value"], data["inner"])

    def work_folder(self, inner: int) -> Path:
        """The code's work folder as the host reaches it."""
        if self.session is not None and self.session.workdir is not None:
            return Path(self.session.workdir)
        return Path(f"/proc/{inner}/root/sandbox/work")


@contextmanager
def attacked(mode: str, **options: Any) -> Iterator[Attacked]:
    options = {"policy": False, "authorized_imports": None, "timeout_s": 20, **options}
    if mode != "bwrap-unprivileged":
        try:
            spec = resolve({"kind": mode.split("-")[0]})
        except SandboxUnavailable as error:
            pytest.skip(f"{mode} is not usable here: {error}")
        with PythonSession(sandbox=spec, **options) as session:
            yield Attacked(session, None)
        return
    python = unprivileged_python()
    runner = subprocess.Popen(
        [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={UNPRIVILEGED_UID}",
            f"--regid={UNPRIVILEGED_UID}",
            "--clear-groups",
            python,
            "-c",
            DRIVER,
            json.dumps(options),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": pythonpath()},
        cwd="/",
    )
    try:
        yield Attacked(None, runner)
    finally:
        assert runner.stdin is not None
        runner.stdin.close()
        try:
            runner.wait(timeout=10)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()


def pythonpath() -> str:
    paths = sysconfig.get_paths()
    return ":".join([SRC, paths["purelib"], paths["platlib"]])


@functools.cache
def unprivileged_python() -> str:
    """An interpreter of this Python version that uid 1000 can run with this environment's
    packages (this one, or the system's of the same version), or a skip."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("the unprivileged-runner mode needs a root test process and setpriv")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/python{version}"):
        check = subprocess.run(
            [
                "setpriv",
                f"--reuid={UNPRIVILEGED_UID}",
                f"--regid={UNPRIVILEGED_UID}",
                "--clear-groups",
                candidate,
                "-c",
                CAN_RUN,
            ],
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": pythonpath()},
            capture_output=True,
            cwd="/",
        )
        if check.returncode == 0:
            return candidate
    pytest.skip(f"no Python {version} that uid {UNPRIVILEGED_UID} can run with these packages")


def limits(pid: int) -> dict[str, tuple[str, str]]:
    """Soft and hard values of every rlimit of a process, read from the host."""
    lines = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {line[:26].strip(): (line[26:47].strip(), line[47:68].strip()) for line in lines}


@functools.cache
def visible_file(mode: str) -> str:
    """A host file the code of `mode` can read, at the same path inside: its interpreter's
    own os.py (only read by the tests, or opened without truncating it)."""
    if mode != "bwrap-unprivileged":
        return os.path.realpath(os.__file__)
    found = subprocess.run(
        [unprivileged_python(), "-c", "import os; print(os.path.realpath(os.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip()
