"""The parent side of the sandbox: a long-lived child process per sample.

The child (`_child.py`) starts inside the isolation its `SandboxSpec` names (bubblewrap,
landlock, or the unsafe in-process guard) and locks itself down; this side enforces what the
child cannot be trusted with: the wall-clock deadline (SIGKILL to bwrap, whose PID namespace
dies with it, and to the whole process group), the per-step CPU limit (re-armed with `prlimit`
before every step) and the cleanup of the working folder. Every read and write between the two
is non-blocking and bounded by the step's deadline, so a child that floods or ignores its pipes
cannot stall the runner.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from hydragent.sandbox.isolation import SandboxSpec

STARTUP_TIMEOUT_S = 30.0
KILL_WAIT_S = 1.0
REAP_WAIT_S = 0.2  # for bwrap to reap its init after a kill, before it is killed itself
# Time spent in the parent's tools does not count against a step, up to this many times the
# step's own timeout: a child calling slow tools in a loop still ends.
TOOL_TIME_CEILING = 5
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_ANSWER_CHARS = 100_000  # what the child keeps of a final answer; enforced here as well
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: how often the parent measures a host work folder (landlock, process), which no kernel caps
QUOTA_POLL_S = 0.1
#: files and folders a host work folder may hold, so that measuring it stays cheap
MAX_WORK_ENTRIES = 10_000


@dataclass
class SandboxResult:
    """What one step of code produced. `ok` is False on any error, violation or timeout."""

    ok: bool
    stdout: str = ""
    error: str | None = None
    timed_out: bool = False
    value: str | None = None
    final_answer: Any = None
    is_final_answer: bool = False
    output_truncated: bool = False
    returncode: int | None = None
    duration_s: float = 0.0

    def observation(self) -> str:
        """The text an agent shows the model after this step."""
        parts = []
        if self.stdout:
            parts.append("Execution logs:\n" + self.stdout.rstrip("\n"))
        if self.value is not None:
            parts.append("Last output from code snippet:\n" + self.value)
        if self.error:
            parts.append("Error: " + self.error)
        return "\n".join(parts) if parts else "Execution logs: (no output)"

    def dict(self) -> dict[str, Any]:
        return asdict(self)


class _StepReply(BaseModel):
    """What the child may send back: anything else is a protocol break and ends the child."""

    model_config = ConfigDict(strict=True)

    type: Literal["result"]
    error: str | None
    stdout: str
    value: str | None
    final_answer: Any
    is_final_answer: bool
    output_truncated: bool


class _ToolCall(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["tool_call"]
    name: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class SandboxError(RuntimeError):
    """The sandbox itself could not start (not an error of the model's code)."""


class PythonSession:
    """Runs code step after step in one isolated child process; variables persist across steps.

    A step that times out or kills the child ends that process: the next `run` starts a fresh
    one (and says so), so one runaway step never takes the whole sample down.
    `tools` maps names to callables the code may call; they run here, in the parent.
    `sandbox` is the isolation (None: `resolve({"kind": "auto"})`, which fails closed).
    `workdir` None gives the code a private folder (a size-capped tmpfs under bwrap, else a
    temporary folder removed on close); a given folder is shared with it read-write.
    `policy=False` drops the in-process guard, leaving only the kernel's isolation: for tests
    that the boundary holds without it.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 10,
        memory_mb: int = 512,
        authorized_imports: list[str] | None = None,
        max_output_chars: int = 10000,
        workdir: str | None = None,
        cpu_limit_s: float | None = None,
        max_file_mb: int = 64,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        sandbox: SandboxSpec | None = None,
        policy: bool = True,
    ) -> None:
        if timeout_s <= 0 or memory_mb <= 0 or max_output_chars <= 0:
            raise ValueError("timeout_s, memory_mb and max_output_chars must be positive")
        if sandbox is None:
            from hydragent.sandbox.isolation import resolve

            sandbox = resolve({"kind": "auto"})
        self.sandbox = sandbox
        self.policy = policy
        self.timeout_s = float(timeout_s)
        self.cpu_limit_s = float(cpu_limit_s if cpu_limit_s is not None else timeout_s)
        self.memory_mb = int(memory_mb)
        self.authorized_imports = None if authorized_imports is None else list(authorized_imports)
        self.max_output_chars = int(max_output_chars)
        self.max_file_mb = min(int(max_file_mb), sandbox.config.max_file_mb)
        self.tools = dict(tools or {})
        private_tmpfs = workdir is None and sandbox.name == "bwrap"
        self._own_workdir = workdir is None and not private_tmpfs
        self.workdir: str | None = workdir
        if self._own_workdir:
            self.workdir = tempfile.mkdtemp(prefix="hydragent-sandbox-")
        if self.workdir is not None:
            Path(self.workdir).mkdir(parents=True, exist_ok=True)
        self._process: subprocess.Popen[bytes] | None = None
        self._inner_pid: int | None = None
        self._inner_pidfd = -1  # holds the interpreter (no pid reuse) and tells when it is gone
        self._init_pidfd = -1  # bwrap's init in the sandbox's PID namespace
        self._cgroup: Path | None = None  # the thread cap of a root runner's child
        self._stderr: Any = None
        self._req_w = self._resp_r = -1
        self._restarted_note = ""
        self._lock = threading.Lock()
        self._over_quota = ""  # why the watcher killed the child for its work folder

    def __enter__(self) -> PythonSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, code: str) -> SandboxResult:
        """Run one step of code and return its output, value, error or final answer."""
        with self._lock:
            if self._process is None:
                self._start()
            note, self._restarted_note = self._restarted_note, ""
            result = self._run_step(code)
            if note:
                result.stdout = f"{note}\n{result.stdout}"
            return result

    def close(self) -> None:
        """Kill the child and remove the working folder this session created."""
        with self._lock:
            self._kill()
            if self._own_workdir and self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _start(self) -> None:
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        bpf_r, bpf_w = os.pipe()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        try:
            launch = self.sandbox.launch(self.workdir, req_r, resp_w, bpf_r)
            if self.sandbox.name != "process":
                from hydragent.sandbox.seccomp import filter_bpf, refused_for

                extra = refused_for(self.sandbox.name, os.geteuid())
                os.write(bpf_w, filter_bpf(extra))  # a few hundred bytes: fits the pipe's buffer
            os.close(bpf_w)
            bpf_w = -1
            self._process = subprocess.Popen(
                launch.argv,
                pass_fds=(req_r, resp_w, bpf_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                cwd=launch.cwd,
                env=launch.env,
                start_new_session=True,
            )
        except OSError as error:
            self._kill()
            raise SandboxError(f"the sandbox could not start: {error}") from error
        except BaseException:  # e.g. SandboxUnavailable: nothing of this start may leak
            self._kill()
            raise
        finally:
            for fd in (req_r, resp_w, bpf_r, bpf_w):
                if fd >= 0:
                    os.close(fd)
        os.set_blocking(self._req_w, False)
        os.set_blocking(self._resp_r, False)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        sent = self._send(
            {
                **launch.child,
                "workdir": launch.workdir,
                "memory_mb": self.memory_mb,
                "max_file_mb": self.max_file_mb,
                "cpu_limit_s": math.ceil(self.cpu_limit_s),
                "authorized_imports": self.authorized_imports,
                "max_output_chars": self.max_output_chars,
                "tool_names": sorted(self.tools),
                "policy": self.policy,
            },
            deadline,
        )
        ready = self._receive(deadline) if sent else None
        if not ready or ready.get("type") != "ready":
            detail = self._child_stderr()
            self._kill()
            raise SandboxError(f"the sandbox process failed to start: {detail or 'no output'}")
        self._inner_pid = self._find_inner_pid()
        if self._inner_pid is not None and hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self._inner_pidfd = os.pidfd_open(self._inner_pid)
        if self._inner_pid is not None:
            self._cgroup = cap_threads(self._inner_pid, self.sandbox.config.max_threads)
        if self.sandbox.name == "bwrap" and hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError, ValueError):
                pid = self._process.pid
                init = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                self._init_pidfd = os.pidfd_open(int(init[0]))
        if self._own_workdir:
            watcher = threading.Thread(
                target=self._watch_work_folder, args=(self._process,), daemon=True
            )
            watcher.start()

    def _find_inner_pid(self) -> int | None:
        """The host pid of the interpreter (under bwrap, a grandchild: bwrap, its init, python),
        so that `prlimit` reaches the process that runs the code."""
        assert self._process is not None
        pid = self._process.pid
        if self.sandbox.name != "bwrap":
            return pid
        for _ in range(2):
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                return None
            if len(children) != 1:
                return None
            pid = int(children[0])
        return pid

    def _run_step(self, code: str) -> SandboxResult:
        started = time.monotonic()
        deadline = started + self.timeout_s
        self._arm_cpu_limit()
        if not self._send({"code": code}, deadline):
            return self._timed_out(started) if time.monotonic() >= deadline else self._died(started)
        ceiling = started + TOOL_TIME_CEILING * self.timeout_s
        while True:
            message = self._receive(deadline)
            if message is None:
                if time.monotonic() >= deadline and not self._over_quota:
                    return self._timed_out(started)
                return self._died(started)
            try:
                if message.get("type") == "tool_call":
                    call = _ToolCall.model_validate(message)
                else:
                    reply = _StepReply.model_validate(message)
            except ValidationError:
                self._kill()  # a forged or broken message: this child is done
                return self._died(started)
            if message.get("type") == "tool_call":
                tool_started = time.monotonic()
                answer = self._call_tool(call)
                # tools run here, not in the child: their time is not the step's
                deadline = min(deadline + time.monotonic() - tool_started, ceiling)
                if not self._send(answer, deadline):  # a child that never reads its replies
                    if time.monotonic() >= deadline:
                        return self._timed_out(started)
                    return self._died(started)
                continue
            return SandboxResult(
                ok=reply.error is None,
                stdout=self._cap(reply.stdout),
                error=None if reply.error is None else self._cap(reply.error),
                value=None if reply.value is None else self._cap(reply.value),
                final_answer=_cap_answer(reply.final_answer),
                is_final_answer=reply.is_final_answer,
                output_truncated=reply.output_truncated or len(reply.stdout) > self._room,
                duration_s=time.monotonic() - started,
            )

    @property
    def _room(self) -> int:
        return self.max_output_chars + 100  # the child's own truncation note fits

    def _cap(self, text: str) -> str:
        """The child caps its output, but code that writes its own reply to the pipe (a few
        MB) would otherwise hand all of it to the model: cut it here too."""
        if len(text) <= self._room:
            return text
        return text[: self.max_output_chars] + f"\n[output truncated: {len(text)} characters]"

    def _call_tool(self, call: _ToolCall) -> dict[str, Any]:
        tool = self.tools.get(call.name)
        if tool is None:
            return {"error": f"unknown tool {call.name!r}"}
        try:
            result = tool(*call.args, **call.kwargs)
        except Exception as error:  # a tool error is an observation, not a crash
            return {"error": f"tool {call.name!r} failed: {type(error).__name__}: {error}"}
        try:
            json.dumps(result)
        except (TypeError, ValueError, RecursionError):
            try:
                result = str(result)
            except (ValueError, RecursionError) as error:  # e.g. an int past 4300 digits
                return {"error": f"tool {call.name!r} returned what cannot be shown: {error}"}
        return {"result": result}

    def _arm_cpu_limit(self) -> None:
        """Give this step its own CPU budget on top of what the child already used (SIGXCPU
        past it; the wall-clock deadline covers code that ignores the signal)."""
        if self._inner_pid is None or not hasattr(resource, "prlimit") or not self._inner_alive():
            return  # a dead child's pid may already be another process's
        soft = math.ceil(self._cpu_used() + self.cpu_limit_s)
        with contextlib.suppress(OSError, ValueError):
            # only the soft limit moves: raising a hard one needs CAP_SYS_RESOURCE, which
            # containers (and unprivileged runners) lack, so a lowered one could never recover
            _, hard = resource.prlimit(self._inner_pid, resource.RLIMIT_CPU)
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.prlimit(self._inner_pid, resource.RLIMIT_CPU, (soft, hard))

    def _inner_alive(self) -> bool:
        """Whether the interpreter still runs (its pidfd turns readable when it exits): under
        bwrap its init reaps it at once, and the host may hand its pid to a new process."""
        if self._inner_pidfd < 0:
            return self.sandbox.name != "bwrap"  # outside bwrap it is our unreaped child
        return not select.select([self._inner_pidfd], [], [], 0)[0]

    def _cpu_used(self) -> float:
        try:
            fields = Path(f"/proc/{self._inner_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def _timed_out(self, started: float) -> SandboxResult:
        self._kill()
        self._restarted_note = "(The previous step was killed, so a fresh session started.)"
        return SandboxResult(
            ok=False,
            timed_out=True,
            error=(
                f"execution timed out after {self.timeout_s:g} s and was killed; "
                "variables from earlier steps are lost"
            ),
            duration_s=time.monotonic() - started,
        )

    def _died(self, started: float) -> SandboxResult:
        process = self._process
        returncode = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                returncode = process.wait(timeout=KILL_WAIT_S)
            if self.sandbox.name == "bwrap" and returncode is not None and returncode > 128:
                returncode = 128 - returncode  # bwrap exits 128+N when its child dies of signal N
        detail = self._child_stderr()
        self._kill()
        self._restarted_note = (
            "(The previous step crashed the sandbox, so a fresh session started.)"
        )
        cause = (
            f"the sandbox process died (exit code {returncode})"
            if process
            else "the sandbox process broke the message protocol and was killed"
        )
        timed_out = False
        if self._over_quota:
            cause, self._over_quota = self._over_quota, ""
            self._empty_work_folder()
            self._restarted_note = (
                "(The previous step outgrew its work folder and was killed, so a fresh session "
                "started in an empty folder.)"
            )
        elif returncode == -signal.SIGXCPU or returncode == -signal.SIGKILL:
            cause = (
                f"the CPU time limit of {self.cpu_limit_s:g} s was exceeded and the code was killed"
            )
            timed_out = True
        elif detail and "MemoryError" in detail:
            cause = f"the memory limit of {self.memory_mb} MB was exceeded"
        return SandboxResult(
            ok=False,
            error=cause + "; variables from earlier steps are lost",
            timed_out=timed_out,
            returncode=returncode,
            duration_s=time.monotonic() - started,
        )

    def _send(self, message: dict[str, Any], deadline: float) -> bool:
        """Write one message without ever blocking past `deadline`; False if it could not."""
        data = json.dumps(message, default=repr).encode()
        payload = memoryview(struct.pack(">I", len(data)) + data)
        while payload:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _, writable, _ = select.select([], [self._req_w], [], remaining)
            if not writable:
                continue
            try:
                payload = payload[os.write(self._req_w, payload) :]
            except BlockingIOError:
                continue
            except OSError:  # the child is gone (EPIPE)
                return False
        return True

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        """One message, or None when the deadline passes or the child closes the pipe."""
        header = self._read_exactly(4, deadline)
        if header is None:
            return None
        size = struct.unpack(">I", header)[0]
        if size > MAX_MESSAGE_BYTES + 32 * self.max_output_chars:
            self._kill()  # a forged header: never let the child make this process allocate it
            return None
        body = self._read_exactly(size, deadline)
        try:
            message = None if body is None else json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: a deeply nested forgery
            message = None
        if not isinstance(message, dict):
            self._kill()
            return None
        return message

    def _read_exactly(self, size: int, deadline: float) -> bytes | None:
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._resp_r], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(self._resp_r, min(size, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _watch_work_folder(self, process: subprocess.Popen[bytes]) -> None:
        """Kill the child's process group once its host work folder outgrows `work_mb` (or
        MAX_WORK_ENTRIES entries). Under bwrap a tmpfs of that size is the cap; landlock and
        the process guard write to a host folder, where RLIMIT_FSIZE caps each file but not
        how many there are. It watches for the child's whole life, so that a thread the code
        left writing between steps is stopped too."""
        while process.poll() is None:
            time.sleep(QUOTA_POLL_S)
            if self._work_folder_too_big() and process.poll() is None:
                self._over_quota = (
                    f"the work folder grew past its cap of {self.sandbox.config.work_mb} MB or "
                    f"{MAX_WORK_ENTRIES} files (sandbox.work_mb) and the code was killed; its "
                    "files were removed"
                )
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                return

    def _work_folder_too_big(self) -> bool:
        if self.workdir is None:
            return False
        limit = self.sandbox.config.work_mb * 1024 * 1024
        used, entries = 0, 0
        folders = [self.workdir]
        while folders:
            with contextlib.suppress(OSError), os.scandir(folders.pop()) as listing:
                for entry in listing:
                    entries += 1
                    with contextlib.suppress(OSError):
                        used += entry.stat(follow_symlinks=False).st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
                    if used > limit or entries > MAX_WORK_ENTRIES:
                        return True
        return False

    def _empty_work_folder(self) -> None:
        """After a kill for its size: the next step starts with an empty folder."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            Path(self.workdir).mkdir(parents=True, exist_ok=True)

    def _child_stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read(4000).decode(errors="replace").strip()

    def _kill(self) -> None:
        """SIGKILL the interpreter, bwrap (its PID namespace, and every process in it, dies
        with it; --die-with-parent covers the rest) and the process group, then reap them."""
        process, self._process = self._process, None
        self._inner_pid = None
        pidfd, self._inner_pidfd = self._inner_pidfd, -1
        cgroup, self._cgroup = self._cgroup, None
        init_pidfd, self._init_pidfd = self._init_pidfd, -1
        if pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        if init_pidfd >= 0:
            # the namespace's init first, so that bwrap reaps it and exits by itself: killed
            # first, bwrap left it a zombie of the host's init for seconds after the run
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(init_pidfd, signal.SIGKILL)
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=REAP_WAIT_S)
            os.close(init_pidfd)
        if process is not None and process.returncode is None:  # once reaped, the pid is free
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=KILL_WAIT_S)
        if pidfd >= 0:
            select.select([pidfd], [], [], KILL_WAIT_S)  # readable once the process is gone
            os.close(pidfd)
        for fd in (self._req_w, self._resp_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._req_w = self._resp_r = -1
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if cgroup is not None:
            remove_cgroup(cgroup)


def _cap_answer(answer: Any) -> Any:
    """A final answer as the child would have cut it: code that writes its own reply could
    otherwise put megabytes into the sample's record (and a judge's prompt)."""
    try:
        text = json.dumps(answer)
    except (ValueError, RecursionError):
        return "[the final answer was too deeply nested to keep]"
    if len(text) <= MAX_ANSWER_CHARS:
        return answer
    return (answer if isinstance(answer, str) else text)[:MAX_ANSWER_CHARS]


def cap_threads(pid: int, limit: int) -> Path | None:
    """Put the child in a pids cgroup of its own capped at `limit` tasks, where this process may
    make one (a root runner). RLIMIT_NPROC cannot cap it there: under bwrap the child's host
    uid is the runner's, root, whom the kernel exempts, and landlock alone sets none. Called
    before the first step, while the child has one thread; None where no cgroup can be made
    (an unprivileged runner, whose RLIMIT_NPROC holds under bwrap)."""
    for base in _pids_cgroup_bases():
        for stale in base.glob("hydragent-sandbox-*-*"):  # left by runners that were killed
            if not Path(f"/proc/{stale.name.split('-')[2]}").exists():
                remove_cgroup(stale, tries=1)
        folder = base / f"hydragent-sandbox-{os.getpid()}-{pid}"
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            (folder / "pids.max").write_text(str(limit))
            (folder / "cgroup.procs").write_text(str(pid))
        except OSError:
            remove_cgroup(folder)
            continue
        return folder
    return None


def _pids_cgroup_bases() -> list[Path]:
    """This process's own cgroup in the pids hierarchy: cgroup v1's, then the unified one."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    bases = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            bases.append(Path("/sys/fs/cgroup/pids") / path.lstrip("/"))
        elif controllers == "":
            bases.append(Path("/sys/fs/cgroup") / path.lstrip("/"))
    return [b for b in bases if b.is_dir()]


def remove_cgroup(folder: Path, tries: int = 20) -> None:
    """Remove a child's cgroup once its tasks are gone (they leave it as they exit)."""
    for _ in range(tries):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def run_python(
    code: str,
    *,
    timeout_s: float = 10,
    memory_mb: int = 512,
    authorized_imports: list[str] | None = None,
    max_output_chars: int = 10000,
    workdir: str | None = None,
    sandbox: SandboxSpec | None = None,
    policy: bool = True,
) -> SandboxResult:
    """Run one piece of code in a fresh sandbox process and clean up after it."""
    with PythonSession(
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        authorized_imports=authorized_imports,
        max_output_chars=max_output_chars,
        workdir=workdir,
        sandbox=sandbox,
        policy=policy,
    ) as session:
        return session.run(code)
