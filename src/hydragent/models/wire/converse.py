"""The Bedrock Converse wire format: messages as system blocks and alternating turns of content
blocks, tools as `toolConfig` (a grammar as a forced tool), replies and ConverseStream events
back as messages and deltas. It knows no client; bedrock.py sends what it builds."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable
from typing import Any

from hydragent.grammar import Grammar
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
)
from hydragent.messages.images import bedrock_image_block
from hydragent.models.errors import IncompleteStreamError, MalformedResponseError
from hydragent.models.text import get_tool_json_schema


def stream_deltas(
    events: Iterable[dict[str, Any]], as_content: bool
) -> Generator[ChatMessageStreamDelta]:
    """Text deltas, tool-use fragments (or, under a grammar, the forced tool's JSON as text),
    then usage; a stream that ends before `messageStop` is an error."""
    stopped = False
    for event in events:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool_use = (start.get("start") or {}).get("toolUse")
            if tool_use and not as_content:
                function = ChatMessageToolCallFunction(name=tool_use["name"], arguments="")
                call = ChatMessageToolCallStreamDelta(
                    index=start.get("contentBlockIndex"),
                    id=tool_use.get("toolUseId"),
                    type="function",
                    function=function,
                )
                yield ChatMessageStreamDelta(tool_calls=[call])
        elif "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block.get("delta") or {}
            if "text" in delta:
                yield ChatMessageStreamDelta(content=delta["text"])
            elif "reasoningContent" in delta:
                text = delta["reasoningContent"].get("text")
                if text:
                    yield ChatMessageStreamDelta(reasoning_content=text)
            elif "toolUse" in delta and as_content:
                yield ChatMessageStreamDelta(content=delta["toolUse"].get("input", ""))
            elif "toolUse" in delta:
                function = ChatMessageToolCallFunction(
                    name="", arguments=delta["toolUse"].get("input", "")
                )
                call = ChatMessageToolCallStreamDelta(
                    index=block.get("contentBlockIndex"), function=function
                )
                yield ChatMessageStreamDelta(tool_calls=[call])
        elif "messageStop" in event:
            stopped = True
        elif "metadata" in event:
            usage = token_usage(event["metadata"].get("usage"))
            yield ChatMessageStreamDelta(content="", token_usage=usage)
    if not stopped:
        raise IncompleteStreamError(
            "the Bedrock stream ended before messageStop: truncated response"
        )


def converse_messages(
    prepared: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System blocks and alternating user/assistant turns of content blocks."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for entry in prepared:
        role = entry["role"]
        blocks = [_block(part) for part in entry["content"]]
        for call in entry.get("tool_calls") or []:
            blocks.append({"text": f"Calling tool {call.function.name}: {call.function.arguments}"})
        if role == MessageRole.SYSTEM.value:
            system.extend(block for block in blocks if "text" in block)
            continue
        role = "assistant" if role == MessageRole.ASSISTANT.value else "user"
        if turns and turns[-1]["role"] == role:  # Converse requires strict alternation
            _append_blocks(turns[-1]["content"], blocks)
        elif blocks:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _block(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image":
        return bedrock_image_block(part)
    return {"text": part.get("text", "")}


def _append_blocks(target: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
    for block in blocks:
        if target and "text" in block and "text" in target[-1]:
            target[-1] = {"text": f"{target[-1]['text']}\n{block['text']}"}
        else:
            target.append(block)


def tool_config(
    tools: list[Any] | None, tool_choice: Any, grammar: Grammar | None
) -> dict[str, Any] | None:
    if grammar is not None:
        schema = grammar.schema if grammar.type == "json_schema" else {"type": "object"}
        spec = {
            "name": grammar.name,
            "description": "Give the answer as this tool's input.",
            "inputSchema": {"json": schema},
        }
        return {"tools": [{"toolSpec": spec}], "toolChoice": {"tool": {"name": grammar.name}}}
    if not tools:
        return None
    specs = []
    for tool in tools:
        function = get_tool_json_schema(tool)["function"]
        specs.append(
            {
                "toolSpec": {
                    "name": function["name"],
                    "description": function.get("description") or function["name"],
                    "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
                }
            }
        )
    return {"tools": specs, "toolChoice": _tool_choice(tool_choice)}


def _tool_choice(choice: Any) -> dict[str, Any]:
    """OpenAI-style tool_choice in Converse form; tools are required by default."""
    if choice in (None, "required", "any"):
        return {"any": {}}
    if choice == "auto":
        return {"auto": {}}
    name = choice if isinstance(choice, str) else (choice.get("function") or choice).get("name")
    return {"tool": {"name": name}}


def chat_message(response: dict[str, Any], grammar: Grammar | None) -> ChatMessage:
    message = (response.get("output") or {}).get("message")
    if message is None:
        raise MalformedResponseError(
            f"the Bedrock response has no output message (keys: {', '.join(response) or 'none'})"
        )
    blocks = message.get("content") or []
    texts = [block["text"] for block in blocks if "text" in block]
    thoughts = [
        (block["reasoningContent"].get("reasoningText") or {}).get("text") or ""
        for block in blocks
        if "reasoningContent" in block
    ]
    calls = [
        ChatMessageToolCall(
            id=str(use.get("toolUseId", "")),
            function=ChatMessageToolCallFunction(name=use["name"], arguments=use.get("input", {})),
        )
        for use in (block["toolUse"] for block in blocks if "toolUse" in block)
    ]
    content: str | None = "\n".join(texts) if texts else (None if calls else "")
    if grammar is not None and calls:  # the forced tool's input is the structured answer
        content, calls = json.dumps(calls[0].function.arguments), []
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content=content,
        tool_calls=calls or None,
        raw=response,
        token_usage=token_usage(response.get("usage")),
        reasoning_content="".join(thoughts) or None,
    )


def token_usage(usage: dict[str, Any] | None) -> TokenUsage:
    """Converse usage; prompt-cache reads are `cachedTokens`' Bedrock spelling."""
    usage = usage or {}
    return TokenUsage(
        input_tokens=int(usage.get("inputTokens") or 0),
        output_tokens=int(usage.get("outputTokens") or 0),
        cached_tokens=int(usage.get("cacheReadInputTokens") or 0),
    )
