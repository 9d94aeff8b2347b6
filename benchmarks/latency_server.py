"""An OpenAI-compatible chat server that answers after a fixed delay, with scripted agent steps.

The benchmarks measure how close a client gets to the wall time a server forces. This server
forces exactly `latency_ms` per call, holds hundreds of requests at once (asyncio), and counts
every request so that a benchmark can prove how many reached it.

Replies follow a k-step agent script, chosen from the conversation itself so that concurrent
tasks never interfere: the step is the number of assistant turns already in the request.
- With `tools` in the request: steps 1..k-1 call the first tool that is not `final_answer`
  (with `2+3` for its first parameter), step k calls `final_answer` with `5`.
- Without tools: the reply is the text `5`.

Run it alone:  python benchmarks/latency_server.py --latency-ms 200 --steps 3 --port 8000
In a benchmark: `with LatencyServer(latency_ms=200, steps=3) as server: server.base_url ...`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

ANSWER = "5"
EXPRESSION = "2+3"
FINAL_ANSWER_TOOL = "final_answer"


# --- the scripted agent --------------------------------------------------------------------


def agent_step(messages: list[dict[str, Any]]) -> int:
    """Which step (0-based) this request is: assistant turns already in the conversation."""
    return sum(1 for message in messages if message.get("role") == "assistant")


def _tool_name(tool: dict[str, Any]) -> str:
    return str(tool.get("function", tool).get("name", ""))


def _first_parameter(tool: dict[str, Any], default: str) -> str:
    parameters = tool.get("function", tool).get("parameters") or {}
    names = list(parameters.get("required") or []) or list(parameters.get("properties") or {})
    return str(names[0]) if names else default


def scripted_reply(body: dict[str, Any], steps: int, call_number: int) -> dict[str, Any]:
    """The assistant message for this request under the k-step script."""
    tools = body.get("tools") or []
    if not tools:
        return {"role": "assistant", "content": ANSWER}
    step = agent_step(body.get("messages") or [])
    workers = [tool for tool in tools if _tool_name(tool) != FINAL_ANSWER_TOOL]
    finals = [tool for tool in tools if _tool_name(tool) == FINAL_ANSWER_TOOL]
    if step < steps - 1 and workers:
        tool, value = workers[0], EXPRESSION
    elif finals:
        tool, value = finals[0], ANSWER
    else:
        return {"role": "assistant", "content": ANSWER}
    arguments = {_first_parameter(tool, "answer"): value}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{call_number}",
                "type": "function",
                "function": {"name": _tool_name(tool), "arguments": json.dumps(arguments)},
            }
        ],
    }


def completion(body: dict[str, Any], message: dict[str, Any], call_number: int) -> dict[str, Any]:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {
        "id": f"chatcmpl-{call_number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "latency"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


# --- the aiohttp app -----------------------------------------------------------------------


def build_app(latency_ms: float, steps: int, max_rps: float | None = None) -> Any:
    """`max_rps`: answer 429 (Retry-After: 1) to a request above that many per second, as
    providers meter it: a bucket of one second's worth, refilled continuously."""
    from aiohttp import web

    state: dict[str, float] = {"requests": 0, "in_flight": 0, "max_in_flight": 0}
    state.update(first_request_at=0.0, last_response_at=0.0, rate_limited=0)
    bucket = {"tokens": float(max_rps or 0), "at": time.monotonic()}

    def over_limit() -> bool:
        if not max_rps:
            return False
        now = time.monotonic()
        bucket["tokens"] = min(max_rps, bucket["tokens"] + (now - bucket["at"]) * max_rps)
        bucket["at"] = now
        if bucket["tokens"] < 1:
            return True
        bucket["tokens"] -= 1
        return False

    async def chat(request: web.Request) -> web.Response:
        if over_limit():
            state["rate_limited"] += 1
            return web.json_response(
                {"error": {"message": "rate limit exceeded", "type": "rate_limit"}},
                status=429,
                headers={"Retry-After": "1"},
            )
        state["requests"] += 1
        call_number = int(state["requests"])
        if call_number == 1:
            state["first_request_at"] = time.time()
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        try:
            body = await request.json()
            if body.get("stream"):
                return web.json_response(
                    {"error": {"message": "this benchmark server does not stream"}}, status=400
                )
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            reply = scripted_reply(body, steps, call_number)
            return web.json_response(completion(body, reply, call_number))
        finally:
            state["in_flight"] -= 1
            state["last_response_at"] = time.time()

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(state)

    async def reset(_: web.Request) -> web.Response:
        state.update(
            requests=0, in_flight=0, max_in_flight=0, first_request_at=0.0, last_response_at=0.0
        )
        state.update(rate_limited=0)
        return web.json_response(state)

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "latency", "object": "model"}]})

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


async def serve(
    host: str, port: int, latency_ms: float, steps: int, max_rps: float | None = None
) -> None:
    from aiohttp import web

    runner = web.AppRunner(build_app(latency_ms, steps, max_rps), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"PORT {bound}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--steps", type=int, default=3, help="agent steps per task (k)")
    parser.add_argument("--max-rps", type=float, default=None, help="429 above this rate")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.latency_ms, args.steps, args.max_rps))


# --- the handle a benchmark uses -----------------------------------------------------------


class LatencyServer:
    """Runs the server in its own process, so its work never competes for the client's GIL."""

    def __init__(
        self, latency_ms: float = 200.0, steps: int = 3, max_rps: float | None = None
    ) -> None:
        self.latency_ms = latency_ms
        self.steps = steps
        self.max_rps = max_rps
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url` / `api_base`."""
        return f"{self.root}/v1"

    def __enter__(self) -> LatencyServer:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--latency-ms",
            str(self.latency_ms),
            "--steps",
            str(self.steps),
            *(["--max-rps", str(self.max_rps)] if self.max_rps else []),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("PORT "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"latency server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None

    def stats(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.root}/stats", timeout=10) as response:
            return json.loads(response.read())

    @property
    def requests(self) -> int:
        return int(self.stats()["requests"])

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.root}/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass


if __name__ == "__main__":
    main()
