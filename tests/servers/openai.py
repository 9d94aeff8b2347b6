"""OpenAI Chat Completions as the real API speaks it, plus Azure's deployment routes.

Routes: `POST /v1/chat/completions` (OpenAI, OpenAI-compatible servers, and the route
`huggingface_hub.InferenceClient(base_url=...)` calls) and
`POST /openai/deployments/{deployment}/chat/completions?api-version=...` with an `api-key`
header (Azure OpenAI). Replies honour `stop`, stream as SSE with `include_usage`, and carry
tool calls in the OpenAI shape.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web
from tests.servers.base import Fault, LoopbackServer, Reply, apply_fault, word_count


def _error_body(fault: Fault) -> dict[str, Any]:
    return {"error": {"message": fault.body, "type": "server_error", "code": str(fault.status)}}


def _cut_at_stop(text: str | None, stop: Any) -> str | None:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if text is None:
        return None
    cuts = [i for s in stops if s and (i := text.find(s)) != -1]
    return text[: min(cuts)] if cuts else text


def _usage(body: dict[str, Any], reply: Reply, content: str | None) -> dict[str, Any] | None:
    if reply.usage != "auto":
        return reply.usage
    prompt = sum(word_count(json.dumps(m.get("content"))) for m in body.get("messages", []))
    thinking = word_count(reply.reasoning or "")
    completion = word_count(content or "") + len(reply.tool_calls) + thinking
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reply.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": thinking}
    if reply.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return usage


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id", f"call_{i}"),
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call.get("arguments", {}))},
        }
        for i, call in enumerate(reply.tool_calls)
    ]


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    content = _cut_at_stop(reply.content, body.get("stop"))
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reply.reasoning:
        message[reply.reasoning_field] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(body, reply, content),
    }


async def _stream(
    request: web.Request, body: dict[str, Any], reply: Reply, truncate: bool
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
    }

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {**base, "choices": choices, **extra}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]

    content = _cut_at_stop(reply.content, body.get("stop"))
    await send(choice({"role": "assistant", "content": ""}))
    for i, word in enumerate((reply.reasoning or "").split(" ") if reply.reasoning else []):
        await send(choice({reply.reasoning_field: word if i == 0 else " " + word}))
    words = (content or "").split(" ") if content else []
    for i, word in enumerate(words):
        await send(choice({"content": word if i == 0 else " " + word}))
        if truncate and i == 1:
            await response.write_eof()  # the server goes away mid-answer: no finish, no [DONE]
            return response
    for i, call in enumerate(_tool_calls(reply)):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        first = {"name": call["function"]["name"], "arguments": arguments[:half]}
        await send(
            choice(
                {
                    "tool_calls": [
                        {"index": i, "id": call["id"], "type": "function", "function": first}
                    ]
                }
            )
        )
        await send(
            choice({"tool_calls": [{"index": i, "function": {"arguments": arguments[half:]}}]})
        )
    await send(choice({}, "tool_calls" if reply.tool_calls else "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        await send([], usage=_usage(body, reply, content))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def openai_app(server: LoopbackServer) -> web.Application:
    """The aiohttp app; `server.api_key`, when set, is required as a bearer token."""

    async def answer(request: web.Request) -> web.StreamResponse:
        recorded = await server.record(request)
        try:
            body = recorded.json
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        fault = server.next_fault()
        if fault is not None:
            faulted = await apply_fault(fault, request, _error_body)
            if faulted is not None:
                return faulted
        reply = server.next_reply()
        if body.get("stream"):
            truncate = fault is not None and fault.kind == "truncate"
            return await _stream(request, body, reply, truncate)
        return web.json_response(_completion(body, reply))

    async def chat(request: web.Request) -> web.StreamResponse:
        expected = getattr(server, "api_key", None)
        if expected and request.headers.get("Authorization") != f"Bearer {expected}":
            await server.record(request)
            return web.json_response(
                {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
                status=401,
            )
        return await answer(request)

    async def azure_chat(request: web.Request) -> web.StreamResponse:
        if "api-version" not in request.query:
            await server.record(request)
            return web.json_response(
                {"error": {"code": "404", "message": "Resource not found"}}, status=404
            )
        if not request.headers.get("api-key"):
            await server.record(request)
            return web.json_response(
                {"error": {"code": "401", "message": "Access denied due to missing api-key."}},
                status=401,
            )
        return await answer(request)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", azure_chat)
    return app
