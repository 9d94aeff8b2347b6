"""Amazon Bedrock Converse (`POST /model/{modelId}/converse`) as boto3 expects it.

The server checks what the real service checks before answering: a well-formed SigV4
`Authorization` header, only the request keys Converse accepts, content blocks with exactly
one member, a conversation that starts with a user turn and alternates. Errors use the AWS
rest-json shape (`x-amzn-ErrorType` header, `{"message": ...}` body) that botocore parses.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from aiohttp import web
from tests.servers.base import LoopbackServer, apply_fault, word_count

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
BLOCK_KEYS = {"text", "image", "document", "video", "toolUse", "toolResult", "guardContent"}
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


def bedrock_app(server: LoopbackServer) -> web.Application:
    async def converse(request: web.Request) -> web.StreamResponse:
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
        if reply.content is not None:
            content.append({"text": _cut_at_stop(reply.content, stops)})
        for i, call in enumerate(reply.tool_calls):
            tool_use = {"toolUseId": f"tooluse_{i}", "name": call["name"]}
            content.append({"toolUse": {**tool_use, "input": call.get("arguments", {})}})
        prompt = sum(word_count(json.dumps(m["content"])) for m in body["messages"])
        output = sum(word_count(block.get("text", "")) for block in content) + len(reply.tool_calls)
        usage = {"inputTokens": prompt, "outputTokens": output, "totalTokens": prompt + output}
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
    return app
