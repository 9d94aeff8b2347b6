"""The server harness: an aiohttp app on a free 127.0.0.1 port in a background thread.

Tests script replies (`server.replies.append(Reply(...))`) and faults
(`server.faults.append(Fault(...))`); each request consumes one fault first, then one reply.
What the server received is kept in `server.requests` for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

FaultKind = Literal["status", "hang", "reset", "malformed", "truncate"]


@dataclass
class Fault:
    """One injected failure.

    status: reply `status` with `body` (and `Retry-After` when `retry_after` is set);
    hang: sleep `seconds` before answering normally (a client timeout should fire first);
    reset: drop the connection without a response; malformed: 200 with a body that is not
    JSON; truncate: a streamed reply cut off before it finishes.
    """

    kind: FaultKind = "status"
    status: int = 500
    body: str = "internal error injected by the loopback server"
    retry_after: str | None = None
    seconds: float = 30.0


@dataclass
class Reply:
    """One scripted answer: text and/or tool calls (`{"name", "arguments"}`), and usage.

    `usage=None` makes the server send `"usage": null`, as some OpenAI-compatible servers do.
    `reasoning` is the model's thinking, sent the way each protocol sends it (OpenAI-style
    `reasoning_content`, or `reasoning` with `reasoning_field="reasoning"`; Bedrock
    `reasoningContent` blocks); its words are counted as reasoning tokens. `cached_tokens`
    is reported as prompt-cache hits.
    """

    content: str | None = "Hello from the loopback server."
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] | Literal["auto"] | None = "auto"
    reasoning: str | None = None
    reasoning_field: Literal["reasoning_content", "reasoning"] = "reasoning_content"
    cached_tokens: int = 0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class LoopbackServer:
    """Runs `app_factory(server)` on 127.0.0.1:<free port> until `stop()`."""

    def __init__(self, app_factory: Callable[[LoopbackServer], web.Application]) -> None:
        self.app_factory = app_factory
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.replies: deque[Reply] = deque()
        self.default_reply = Reply()
        self.always_fail: Fault | None = None
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app_factory(self), shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(_cancel_pending(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # Used by the protocol handlers.
    async def record(self, request: web.Request) -> Recorded:
        entry = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=await request.read(),
        )
        self.requests.append(entry)
        return entry

    def next_fault(self) -> Fault | None:
        if self.always_fail is not None:
            return self.always_fail
        return self.faults.popleft() if self.faults else None

    def next_reply(self) -> Reply:
        return self.replies.popleft() if self.replies else self.default_reply


async def _cancel_pending() -> None:
    """Handlers still sleeping in a `hang` fault are cancelled, so the loop closes cleanly."""
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def apply_fault(
    fault: Fault, request: web.Request, error_body: Callable[[Fault], dict[str, Any]]
) -> web.StreamResponse | None:
    """Serve `fault`; None means "carry on answering normally" (after a hang)."""
    if fault.kind == "status":
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return web.json_response(error_body(fault), status=fault.status, headers=headers)
    if fault.kind == "hang":
        await asyncio.sleep(fault.seconds)
        return None
    if fault.kind == "reset":
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the socket is gone
    if fault.kind == "malformed":
        return web.Response(text='{"id": "broken", "choices": [', content_type="application/json")
    return None  # "truncate" is handled by the streaming code


def word_count(text: str) -> int:
    return len(text.split())


@contextlib.contextmanager
def running(app_factory: Callable[[LoopbackServer], web.Application]) -> Iterator[LoopbackServer]:
    """A started server, stopped on exit: `with running(openai_app) as server: ...`."""
    server = LoopbackServer(app_factory).start()
    try:
        yield server
    finally:
        server.stop()
