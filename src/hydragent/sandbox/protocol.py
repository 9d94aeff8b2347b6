"""The messages between the parent and the child, and the parent's side of the two pipes.

Every read and write is non-blocking and bounded by a deadline, so a child that floods or
ignores its pipes cannot stall the runner; a message that does not fit `StepReply` or
`ToolCall` (a strict pydantic model) is a protocol break and ends the child.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_ANSWER_CHARS = 100_000  # what the child keeps of a final answer; enforced here as well
ROOM = 100  # past max_output_chars: the child's own truncation note fits


class SandboxError(RuntimeError):
    """The sandbox itself could not start (not an error of the model's code)."""


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


class StepReply(BaseModel):
    """What the child may send back: anything else is a protocol break and ends the child."""

    model_config = ConfigDict(strict=True)

    type: Literal["result"]
    error: str | None
    stdout: str
    value: str | None
    final_answer: Any
    is_final_answer: bool
    output_truncated: bool


class ToolCall(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["tool_call"]
    name: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class Channel:
    """The parent's ends of the request and reply pipes, both non-blocking."""

    def __init__(self, request_fd: int, reply_fd: int, max_message: int) -> None:
        self.request_fd, self.reply_fd, self.max_message = request_fd, reply_fd, max_message
        os.set_blocking(request_fd, False)
        os.set_blocking(reply_fd, False)

    def send(self, message: dict[str, Any], deadline: float) -> bool:
        """Write one message without ever blocking past `deadline`; False if it could not."""
        data = json.dumps(message, default=repr).encode()
        payload = memoryview(struct.pack(">I", len(data)) + data)
        while payload:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _, writable, _ = select.select([], [self.request_fd], [], remaining)
            if not writable:
                continue
            try:
                payload = payload[os.write(self.request_fd, payload) :]
            except BlockingIOError:
                continue
            except OSError:  # the child is gone (EPIPE)
                return False
        return True

    def receive(self, deadline: float) -> dict[str, Any] | Literal[False] | None:
        """One message; None when the deadline passes or the child closes the pipe; False for
        a forged header or body (the caller kills the child)."""
        header = self._read_exactly(4, deadline)
        if header is None:
            return None
        size = struct.unpack(">I", header)[0]
        if size > self.max_message:
            return False  # a forged header: never let the child make this process allocate it
        body = self._read_exactly(size, deadline)
        if body is None:
            return None
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: a deeply nested forgery
            return False
        return message if isinstance(message, dict) else False

    def _read_exactly(self, size: int, deadline: float) -> bytes | None:
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.reply_fd], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(self.reply_fd, min(size, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        for fd in (self.request_fd, self.reply_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def cap_answer(answer: Any) -> Any:
    """A final answer as the child would have cut it: code that writes its own reply could
    otherwise put megabytes into the sample's record (and a judge's prompt)."""
    try:
        text = json.dumps(answer)
    except (ValueError, RecursionError):
        return "[the final answer was too deeply nested to keep]"
    if len(text) <= MAX_ANSWER_CHARS:
        return answer
    return (answer if isinstance(answer, str) else text)[:MAX_ANSWER_CHARS]


def cap_text(text: str, limit: int) -> str:
    """The child caps its output, but code that writes its own reply to the pipe (a few MB)
    would otherwise hand all of it to the model: cut it here too."""
    if len(text) <= limit + ROOM:
        return text
    return text[:limit] + f"\n[output truncated: {len(text)} characters]"


def call_tool(tools: Mapping[str, Callable[..., Any]], call: ToolCall) -> dict[str, Any]:
    """Run a tool the child asked for, here in the parent; its error is an observation."""
    tool = tools.get(call.name)
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
