"""The parent side of the sandbox: a long-lived child process per sample.

The child (`_child.py`) starts inside the isolation its `SandboxSpec` names (bubblewrap,
landlock, or the unsafe in-process guard) and locks itself down; this side enforces what the
child cannot be trusted with: the wall-clock deadline (SIGKILL to bwrap, whose PID namespace
dies with it, and to the whole process group), the per-step CPU budget, cgroups, the watch on
a host work folder (`guards.py`) and the cleanup of the working folder. The session runs the
spec it is given: choosing one is `choice.resolve`'s job.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hydragent.sandbox import guards
from hydragent.sandbox.isolation import SandboxSpec
from hydragent.sandbox.paths import MAX_WORK_ENTRIES
from hydragent.sandbox.protocol import (
    MAX_MESSAGE_BYTES,
    ROOM,
    Channel,
    SandboxError,
    SandboxResult,
    StepReply,
    ToolCall,
    call_tool,
    cap_answer,
    cap_text,
)

STARTUP_TIMEOUT_S = 30.0
KILL_WAIT_S = 1.0
TOOL_TIME_CEILING = 5  # tools' time is not a step's, up to this many times its own timeout
UNPRIVILEGED_CPU_STEPS = 100  # CPU budgets an unprivileged runner's child gets in all


class PythonSession:
    """Runs code step after step in one isolated child process; variables persist across steps.

    A step that times out or kills the child ends that process: the next `run` starts a fresh
    one (and says so), so one runaway step never takes the whole sample down.
    `sandbox` is the resolved isolation (`hydragent.sandbox.resolve`); `tools` maps names to
    callables the code may call; they run here, in the parent.
    `workdir` None gives the code a private folder (a size- and inode-capped tmpfs under bwrap,
    else a temporary folder removed on close); a given folder is shared with it read-write
    (under a root runner's bwrap it is handed to the sandbox's uid, 65534).
    `policy=False` drops the in-process guard, leaving only the kernel's isolation: for tests
    that the boundary holds without it.
    """

    def __init__(
        self,
        *,
        sandbox: SandboxSpec,
        timeout_s: float = 10,
        memory_mb: int = 512,
        authorized_imports: list[str] | None = None,
        max_output_chars: int = 10000,
        workdir: str | None = None,
        cpu_limit_s: float | None = None,
        max_file_mb: int = 64,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        policy: bool = True,
    ) -> None:
        if not isinstance(sandbox, SandboxSpec):
            raise TypeError("sandbox must be a SandboxSpec: hydragent.sandbox.resolve(node)")
        if timeout_s <= 0 or memory_mb <= 0 or max_output_chars <= 0:
            raise ValueError("timeout_s, memory_mb and max_output_chars must be positive")
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
        self._channel: Channel | None = None
        self._inner_pid: int | None = None
        self._inner_pidfd = -1  # holds the interpreter (no pid reuse) and tells when it is gone
        self._init_pidfd = -1  # bwrap's init in the sandbox's PID namespace
        self._cgroups: list[Path] = []
        self._stderr: Any = None
        self._restarted_note = ""
        self._lock = threading.Lock()
        self._why_killed = ""  # why the watcher killed the child
        self._cpu_budget = math.inf  # CPU seconds the child may have used by the step's end

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
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        bpf_r, bpf_w = os.pipe()
        self._channel = Channel(req_w, resp_r, MAX_MESSAGE_BYTES + 32 * self.max_output_chars)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        try:
            launch = self.sandbox.launch(self.workdir, req_r, resp_w, bpf_r)
            if self.sandbox.name != "process":
                from hydragent.sandbox.seccomp import filter_bpf

                os.write(bpf_w, filter_bpf(self.sandbox.name))  # a few KB: fits the pipe
            os.close(bpf_w)
            bpf_w = -1
            gated = self.sandbox.name == "bwrap"  # its stage waits for the cgroups (bwrap.py)
            self._process = subprocess.Popen(
                launch.argv,
                pass_fds=(req_r, resp_w, bpf_r),
                stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                cwd=launch.cwd,
                env=launch.env,
                start_new_session=True,
            )
        except OSError as error:
            self._kill()
            raise SandboxError(f"the sandbox could not start: {error}") from error
        except BaseException:  # e.g. a missing tool: nothing of this start may leak
            self._kill()
            raise
        finally:
            for fd in (req_r, resp_w, bpf_r, bpf_w):
                if fd >= 0:
                    os.close(fd)
        allowance = self.sandbox.config.work_mb + guards.KERNEL_ALLOWANCE_MB
        threads = self.sandbox.config.max_threads + (2 if gated else 0)  # bwrap and its init
        self._cgroups = guards.prepare(self._process.pid, threads, self.memory_mb + allowance)
        if gated and self._process.stdin is not None:
            self._cgroups = guards.attach(self._cgroups, self._process.pid)
            with contextlib.suppress(OSError):
                self._process.stdin.write(b"go\n")
                self._process.stdin.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        settings = {
            **launch.child,
            "workdir": launch.workdir,
            "memory_mb": self.memory_mb,
            "max_file_mb": self.max_file_mb,
            "cpu_ceiling_s": self._cpu_ceiling(),
            "authorized_imports": self.authorized_imports,
            "max_output_chars": self.max_output_chars,
            "tool_names": sorted(self.tools),
            "policy": self.policy,
        }
        ready = self._receive(deadline) if self._channel.send(settings, deadline) else None
        if not ready or ready.get("type") != "ready":
            detail = self._child_stderr()
            self._kill()
            raise SandboxError(f"the sandbox process failed to start: {detail or 'no output'}")
        self._inner_pid = guards.inner_pid(self._process.pid, self.sandbox.name == "bwrap")
        if self._inner_pid is not None and hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self._inner_pidfd = os.pidfd_open(self._inner_pid)
        if not gated:
            self._cgroups = guards.attach(self._cgroups, self._inner_pid or 0)  # 0: removed
        if self.sandbox.name == "bwrap" and hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = self._process.pid
                init = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                self._init_pidfd = os.pidfd_open(int(init[0]))
        self._cpu_budget = math.inf
        threading.Thread(target=self._watch, args=(self._process,), daemon=True).start()

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        assert self._channel is not None
        message = self._channel.receive(deadline)
        if message is False:
            self._kill()  # a forged header or body: this child is done
            return None
        return message

    def _run_step(self, code: str) -> SandboxResult:
        started = time.monotonic()
        deadline = started + self.timeout_s
        self._arm_cpu_limit()
        assert self._channel is not None
        if not self._channel.send({"code": code}, deadline):
            return self._timed_out(started) if time.monotonic() >= deadline else self._died(started)
        ceiling = started + TOOL_TIME_CEILING * self.timeout_s
        while True:
            message = self._receive(deadline)
            if message is None:
                if time.monotonic() >= deadline and not self._why_killed:
                    return self._timed_out(started)
                return self._died(started)
            try:
                if message.get("type") == "tool_call":
                    call = ToolCall.model_validate(message)
                else:
                    reply = StepReply.model_validate(message)
            except ValidationError:
                self._kill()  # a forged or broken message: this child is done
                return self._died(started)
            if message.get("type") == "tool_call":
                tool_started = time.monotonic()
                answer = call_tool(self.tools, call)
                # tools run here, not in the child: their time is not the step's
                deadline = min(deadline + time.monotonic() - tool_started, ceiling)
                if self._channel is None or not self._channel.send(answer, deadline):
                    if time.monotonic() >= deadline:
                        return self._timed_out(started)
                    return self._died(started)
                continue
            if self._outgrew_work_folder():  # a step quicker than the watcher's next look
                self._why_killed = self._work_folder_note()
                self._kill_group()
                return self._died(started)
            limit = self.max_output_chars
            return SandboxResult(
                ok=reply.error is None,
                stdout=cap_text(reply.stdout, limit),
                error=None if reply.error is None else cap_text(reply.error, limit),
                value=None if reply.value is None else cap_text(reply.value, limit),
                final_answer=cap_answer(reply.final_answer),
                is_final_answer=reply.is_final_answer,
                output_truncated=reply.output_truncated or len(reply.stdout) > limit + ROOM,
                duration_s=time.monotonic() - started,
            )

    def _arm_cpu_limit(self) -> None:
        """Give this step its own CPU budget on top of what the child already used. The
        watcher kills the child past it; where this process may raise a hard limit (a root
        runner) RLIMIT_CPU is set to it too, hard equal to soft, so the code cannot lift it."""
        if self._inner_pid is None or not self._inner_alive():
            return  # a dead child's pid may already be another process's
        budget = guards.cpu_used(self._inner_pid) + self.cpu_limit_s
        self._cpu_budget = budget
        if hasattr(resource, "prlimit"):
            limit = math.ceil(budget)
            with contextlib.suppress(OSError, ValueError):
                resource.prlimit(self._inner_pid, resource.RLIMIT_CPU, (limit, limit))

    def _cpu_ceiling(self) -> int:
        """The child's first RLIMIT_CPU (hard equal to soft). A root runner raises it per
        step; an unprivileged one cannot raise a hard limit, so its child gets a ceiling for
        the whole session and the watcher holds each step to its budget."""
        step = math.ceil(self.cpu_limit_s) + 1
        return step if os.geteuid() == 0 else step * UNPRIVILEGED_CPU_STEPS

    def _inner_alive(self) -> bool:
        """Whether the interpreter still runs (its pidfd turns readable when it exits): under
        bwrap its init reaps it at once, and the host may hand its pid to a new process."""
        if self._inner_pidfd < 0:
            return self.sandbox.name != "bwrap"  # outside bwrap it is our unreaped child
        return not select.select([self._inner_pidfd], [], [], 0)[0]

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        """Kill the child's process group past its step's CPU budget, or once its host work
        folder outgrows `work_mb` (or MAX_WORK_ENTRIES entries: under bwrap the tmpfs caps
        both). It watches for the child's whole life, so that a thread the code left running
        between steps is stopped too."""
        pid = self._inner_pid
        while process.poll() is None:
            time.sleep(guards.WATCH_S)
            why = ""
            if pid is not None and guards.cpu_used(pid) > self._cpu_budget + guards.WATCH_S:
                why = f"the CPU time limit of {self.cpu_limit_s:g} s was exceeded"
            elif self._outgrew_work_folder():
                why = self._work_folder_note()
            if why and process.poll() is None:
                self._why_killed = why
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                return

    def _outgrew_work_folder(self) -> bool:
        """Whether a host work folder (landlock; bwrap's tmpfs caps itself) is past its cap.
        Asked by the watcher every WATCH_S and once more as each step ends, so a step that
        fills the folder between two looks still fails."""
        if not self._own_workdir or self.workdir is None:
            return False
        limit = self.sandbox.config.work_mb * 1024 * 1024
        return guards.folder_too_big(self.workdir, limit, MAX_WORK_ENTRIES)

    def _work_folder_note(self) -> str:
        return (
            f"the work folder grew past its cap of {self.sandbox.config.work_mb} MB "
            f"or {MAX_WORK_ENTRIES} files (sandbox.work_mb) and the code was killed; "
            "its files were removed"
        )

    def _kill_group(self) -> None:
        """SIGKILL the child's process group; `_died` then reaps it and says why."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

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
        why, self._why_killed = self._why_killed, ""
        if why.startswith("the work folder"):
            cause = why
            self._empty_work_folder()
            self._restarted_note = (
                "(The previous step outgrew its work folder and was killed, so a fresh session "
                "started in an empty folder.)"
            )
        elif why or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
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
        cgroups, self._cgroups = self._cgroups, []
        init_pidfd, self._init_pidfd = self._init_pidfd, -1
        guards.kill_tree(process, pidfd, init_pidfd)
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        for cgroup in cgroups:
            guards.remove_cgroup(cgroup)
