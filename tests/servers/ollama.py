"""Ollama's native chat API as `ollama serve` speaks it: `POST /api/chat`.

Replies honour `options.stop`, stream as one JSON object per line ending with `done: true` and
the counts, carry tool calls with object arguments and thinking as `message.thinking`. An
unknown model is a 404 with Ollama's `{"error": ...}` body.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from tests.servers.base import LoopbackServer, Reply, apply_fault, word_count

MODELS = ("llama3.2", "m")


def _cut_at_stop(text: str, stops: list[str]) -> str:
    cuts = [i for s in stops if s and (i := text.find(s)) != -1]
    return text[: min(cuts)] if cuts else text


def _message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    stops = (body.get("options") or {}).get("stop") or []
    message: dict[str, Any] = {
        "role": "assistant",
        "content": _cut_at_stop(reply.content or "", stops),
    }
    if reply.reasoning and body.get("think"):
        message["thinking"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"function": {"name": c["name"], "arguments": c.get("arguments", {})}}
            for c in reply.tool_calls
        ]
    return message


def _counts(body: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
    prompt = sum(word_count(str(m.get("content"))) for m in body.get("messages", []))
    output = word_count(message["content"]) + word_count(message.get("thinking", ""))
    return {"prompt_eval_count": prompt, "eval_count": output + len(message.get("tool_calls", []))}


def ollama_app(server: LoopbackServer) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        recorded = await server.record(request)
        body = recorded.json or {}
        if body.get("model") not in MODELS:
            error = {"error": f"model '{body.get('model')}' not found"}
            return web.json_response(error, status=404)
        fault = server.next_fault()
        if fault is not None:
            faulted = await apply_fault(fault, request, lambda f: {"error": f.body})
            if faulted is not None:
                return faulted
        reply = server.next_reply()
        message = _message(body, reply)
        final = {"model": body["model"], "done": True, "done_reason": "stop"}
        if not body.get("stream", True):
            return web.json_response({**final, "message": message, **_counts(body, message)})
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for word in message["content"].split(" ") if message["content"] else []:
            piece = {"role": "assistant", "content": word + " "}
            await response.write(json.dumps({"message": piece, "done": False}).encode() + b"\n")
        if "thinking" in message or "tool_calls" in message:
            extra = {k: message[k] for k in ("thinking", "tool_calls") if k in message}
            chunk = {"message": {"role": "assistant", "content": "", **extra}, "done": False}
            await response.write(json.dumps(chunk).encode() + b"\n")
        if fault is None or fault.kind != "truncate":
            last = {**final, "message": {"role": "assistant", "content": ""}}
            await response.write(json.dumps({**last, **_counts(body, message)}).encode() + b"\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    return app
