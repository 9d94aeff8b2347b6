"""Amazon Bedrock Converse (`POST /model/{modelId}/converse`) and ConverseStream
(`POST /model/{modelId}/converse-stream`, AWS event-stream binary framing) as boto3 expects.

The server checks what the real service checks before answering: a well-formed SigV4
`Authorization` header, only the request keys Converse accepts, content blocks with exactly
one member, a conversation that starts with a user turn and alternates. Errors use the AWS
rest-json shape (`x-amzn-ErrorType` header, `{"message": ...}` body) that botocore parses.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
import zlib
from typing import Any

from aiohttp import web
from tests.servers.base import LoopbackServer, Reply, apply_fault, word_count

SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=[A-Za-z0-9]+/\d{8}/[a-z0-9-]+/bedrock/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$"
)
REQUEST_KEYS = {
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
}
BLOCK_KEYS = {
    "text",
    "image",
    "document",
    "video",
    "toolUse",
    "toolResult",
    "guardContent",
    "reasoningContent",
}
ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def aws_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    error_type = ERROR_TYPES.get(status, "InternalServerException")
    return web.json_response(
        {"message": message},
        status=status,
        headers={
            "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/",
            **(headers or {}),
        },
    )


def _problem(body: dict[str, Any]) -> str | None:
    """What the real service would reject in this request, or None."""
    unknown = set(body) - REQUEST_KEYS
    if unknown:
        keys = ", ".join(sorted(unknown))
        return f"Malformed input request: extraneous key [{keys}] is not permitted"
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        return "A conversation must start with a user message."
    for previous, current in itertools.pairwise(messages):
        if previous.get("role") == current.get("role"):
            return "A conversation must alternate between user and assistant roles."
    for message in messages:
        for block in message.get("content") or []:
            keys = set(block)
            if len(keys) != 1 or not keys <= BLOCK_KEYS:
                return f"Malformed content block: {sorted(keys)}"
    return None


def _cut_at_stop(text: str, stops: list[str]) -> str:
    cuts = [i for s in stops if s and (i := text.find(s)) != -1]
    return text[: min(cuts)] if cuts else text


def event_frame(event_type: str, payload: dict[str, Any], message_type: str = "event") -> bytes:
    """One AWS event-stream message: prelude (lengths + CRC), string headers, payload, CRC."""
    type_header = ":exception-type" if message_type == "exception" else ":event-type"
    headers = b""
    for name, value in (
        (type_header, event_type),
        (":content-type", "application/json"),
        (":message-type", message_type),
    ):
        encoded = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07"
        headers += struct.pack(">H", len(encoded)) + encoded
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


async def _converse_stream(
    request: web.Request, reply: Reply, stops: list[str], usage: dict[str, int], truncate: bool
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
    await response.prepare(request)
    await response.write(event_frame("messageStart", {"role": "assistant"}))
    index = 0
    if reply.reasoning:
        for piece in reply.reasoning.split(" "):
            delta = {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": piece + " "}}}
            await response.write(event_frame("contentBlockDelta", delta))
        signature = {"reasoningContent": {"signature": "sig"}}
        await response.write(
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": signature})
        )
        await response.write(event_frame("contentBlockStop", {"contentBlockIndex": 0}))
        index = 1
    if reply.content is not None:
        words = _cut_at_stop(reply.content, stops).split(" ")
        for i, word in enumerate(words):
            text = word if i == 0 else " " + word
            delta = {"contentBlockIndex": index, "delta": {"text": text}}
            await response.write(event_frame("contentBlockDelta", delta))
            if truncate and i == 1:
                await response.write_eof()  # cut off: no messageStop, no metadata
                return response
        await response.write(event_frame("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    for offset, call in enumerate(reply.tool_calls):
        block = index + offset
        start = {"toolUse": {"toolUseId": f"tooluse_{offset}", "name": call["name"]}}
        await response.write(
            event_frame("contentBlockStart", {"contentBlockIndex": block, "start": start})
        )
        arguments = json.dumps(call.get("arguments", {}))
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            delta = {"contentBlockIndex": block, "delta": {"toolUse": {"input": piece}}}
            await response.write(event_frame("contentBlockDelta", delta))
        await response.write(event_frame("contentBlockStop", {"contentBlockIndex": block}))
    stop_reason = "tool_use" if reply.tool_calls else "end_turn"
    await response.write(event_frame("messageStop", {"stopReason": stop_reason}))
    metadata = {"usage": usage, "metrics": {"latencyMs": 1}}
    await response.write(event_frame("metadata", metadata))
    await response.write_eof()
    return response


def bedrock_app(server: LoopbackServer) -> web.Application:
    async def converse(request: web.Request) -> web.StreamResponse:
        return await answer(request, streaming=False)

    async def converse_stream(request: web.Request) -> web.StreamResponse:
        return await answer(request, streaming=True)

    async def answer(request: web.Request, streaming: bool) -> web.StreamResponse:
        recorded = await server.record(request)
        if not SIGV4.match(request.headers.get("Authorization", "")):
            return aws_error(403, "The request signature is missing or malformed.")
        body = recorded.json or {}
        problem = _problem(body)
        if problem:
            return aws_error(400, problem)
        fault = server.next_fault()
        if fault is not None:
            faulted = await apply_fault(fault, request, lambda f: {"message": f.body})
            if faulted is not None:
                if fault.kind == "status":
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                    return aws_error(fault.status, fault.body, headers)
                return faulted
        reply = server.next_reply()
        stops = (body.get("inferenceConfig") or {}).get("stopSequences") or []
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            thought = {"reasoningText": {"text": reply.reasoning, "signature": "sig"}}
            content.append({"reasoningContent": thought})
        if reply.content is not None:
            content.append({"text": _cut_at_stop(reply.content, stops)})
        for i, call in enumerate(reply.tool_calls):
            tool_use = {"toolUseId": f"tooluse_{i}", "name": call["name"]}
            content.append({"toolUse": {**tool_use, "input": call.get("arguments", {})}})
        prompt = sum(word_count(json.dumps(m["content"])) for m in body["messages"])
        output = sum(word_count(block.get("text", "")) for block in content) + len(reply.tool_calls)
        output += word_count(reply.reasoning or "")
        usage = {"inputTokens": prompt, "outputTokens": output, "totalTokens": prompt + output}
        if reply.cached_tokens:
            usage["cacheReadInputTokens"] = reply.cached_tokens
        if streaming:
            truncate = fault is not None and fault.kind == "truncate"
            return await _converse_stream(request, reply, stops, usage, truncate)
        return web.json_response(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": "tool_use" if reply.tool_calls else "end_turn",
                "usage": usage if reply.usage is not None else {},
                "metrics": {"latencyMs": 1},
            }
        )

    app = web.Application()
    app.router.add_post("/model/{model_id}/converse", converse)
    app.router.add_post("/model/{model_id}/converse-stream", converse_stream)
    return app
