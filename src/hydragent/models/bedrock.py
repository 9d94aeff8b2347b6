"""AmazonBedrockServerModel: the Bedrock Converse API through boto3 ("bedrock-runtime").

What smolagents got wrong and this does instead: system turns go into `system` blocks, stop
sequences into `inferenceConfig.stopSequences`, tools into `toolConfig` (never `tools` or
`tool_choice`, which boto3 rejects), `toolUse` blocks become tool calls, and a reply without
tool calls is simply a reply (no KeyError). Structured output is enforced through a forced
tool whose input schema is the grammar's schema; the tool input is returned as JSON text.
`generate_stream` uses ConverseStream (AWS event-stream framing, decoded by botocore).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Generator, Iterable
from typing import Any, ClassVar

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
from hydragent.models.base import (
    TOOL_ROLE_CONVERSIONS,
    ApiModel,
    ModelRequest,
    apply_generation,
    get_tool_json_schema,
)
from hydragent.models.openai import (
    IncompleteStreamError,
    MalformedResponseError,
    extra_problem,
    missing_extra,
)

ALL_TO_USER = {role.value: MessageRole.USER.value for role in MessageRole}
#: call kwargs and generation settings with an inferenceConfig home: OpenAI -> Converse names.
INFERENCE_KEYS = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP"}
#: request keys that exist in OpenAI-style APIs but not in Converse.
FOREIGN_KEYS = ("tools", "tool_choice", "response_format", "stop", "model", "messages")


class AmazonBedrockServerModel(ApiModel):
    """Bedrock Converse; `client_kwargs` go to `boto3.client("bedrock-runtime", ...)`.

    Roles default to all-to-user (many Bedrock models take only user content); `roles=`
    replaces that, and any turn still in the `system` role is sent as a `system` block.
    boto3's own retries are off, so the `retry` policy is the only one.
    """

    supported_grammars: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})
    default_role_conversions: ClassVar[dict[str, str] | None] = ALL_TO_USER
    wire_roles: ClassVar[dict[str, str] | None] = dict(TOOL_ROLE_CONVERSIONS)
    native_tools: ClassVar[bool] = True
    takes_images: ClassVar[bool] = True
    returns_reasoning: ClassVar[bool] = True

    def __init__(
        self,
        model_id: str,
        client: Any | None = None,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.client_kwargs = dict(client_kwargs or {})
        kwargs.pop("flatten_messages_as_text", None)  # Converse takes content blocks only
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            client=client,
            **kwargs,
        )
        self.build_client()

    def environment_problems(self) -> list[tuple[str, str]]:
        problems = extra_problem("boto3", type(self).__name__, "bedrock")
        if problems or self._client is not None:
            return problems
        # boto3 signs every request, a local endpoint_url's too: it needs a region and keys
        import boto3
        from botocore.exceptions import ProfileNotFound

        try:
            session = boto3.Session()
        except ProfileNotFound as error:  # AWS_PROFILE names a profile no file defines
            import botocore.session

            known = ", ".join(botocore.session.Session().available_profiles) or "none"
            fix = "unset AWS_PROFILE, or add the profile (aws configure --profile NAME)"
            return [("client_kwargs", f"AWS_PROFILE: {error}; profiles: {known}; {fix}")]
        if not (self.client_kwargs.get("region_name") or session.region_name):
            problems.append(
                (
                    "client_kwargs.region_name",
                    "AmazonBedrockServerModel needs a region: set "
                    "AWS_DEFAULT_REGION or model.client_kwargs.region_name",
                )
            )
        if not (self.client_kwargs.get("aws_access_key_id") or session.get_credentials()):
            problems.append(
                (
                    "client_kwargs",
                    "AmazonBedrockServerModel needs AWS credentials: set "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (or `aws configure`)",
                )
            )
        if not problems:  # boto3 builds its client offline and checks its options doing so
            from botocore.exceptions import BotoCoreError

            try:
                self.create_client()
            except (TypeError, ValueError, BotoCoreError) as error:
                problems.append(("client_kwargs", f"boto3 refuses these options: {error}"))
        return problems

    def create_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as error:
            raise missing_extra(type(self).__name__, "bedrock") from error
        options = dict(self.client_kwargs)
        given = options.pop("config", None)
        config = Config(retries={"total_max_attempts": 1})
        if given is not None:
            config = config.merge(given if isinstance(given, Config) else Config(**dict(given)))
        return boto3.client("bedrock-runtime", config=config, **options)

    def sent_generation(self) -> frozenset[str]:
        return frozenset({*INFERENCE_KEYS, "stop", "reasoning_tokens"})

    def wire_request(self, req: ModelRequest) -> dict[str, Any]:
        """The Converse request: OpenAI-style settings moved to their Converse homes, the
        generation node's too (a thinking budget goes to `additionalModelRequestFields`)."""
        if req.grammar is not None and req.tools:
            raise ValueError(
                "AmazonBedrockServerModel enforces a grammar through a forced tool, so it "
                "cannot combine grammar= with tools; drop one of them"
            )
        system, turns = converse_messages(req.messages)
        request = self.settings(req)
        tool_choice = request.pop("tool_choice", None)
        for key in FOREIGN_KEYS:
            request.pop(key, None)
        inference = dict(request.pop("inferenceConfig", None) or {})
        for key, converse_key in INFERENCE_KEYS.items():
            if key in request:
                inference[converse_key] = request.pop(key)
        apply_generation(inference, req.generation, INFERENCE_KEYS)
        if req.stop_sequences:
            inference["stopSequences"] = list(req.stop_sequences)
        budget = req.generation.get("reasoning_tokens")
        if budget:
            extra = dict(request.get("additionalModelRequestFields") or {})
            extra.setdefault("thinking", {"type": "enabled", "budget_tokens": budget})
            request["additionalModelRequestFields"] = extra
        request.update(modelId=self.model_id, messages=turns)
        if system:
            request["system"] = system
        if inference:
            request["inferenceConfig"] = inference
        tool_config = _tool_config(req.tools, tool_choice, req.grammar)
        if tool_config:
            request["toolConfig"] = tool_config
        return request

    def request(self, req: ModelRequest) -> ChatMessage:
        request = self.wire_request(req)
        response = self.call_api(self.client.converse, **request)
        return _chat_message(response, req.grammar)

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta]:
        """ConverseStream events as deltas; only opening the stream is retried."""
        request = self.wire_request(req)
        response = self.call_api(self.client.converse_stream, **request)
        yield from _stream_deltas(response.get("stream") or [], as_content=req.grammar is not None)


def _stream_deltas(
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
            usage = _token_usage(event["metadata"].get("usage"))
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


#: leading bytes -> Converse image format.
IMAGE_MAGIC = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"RIFF": "webp"}


def _block(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image":
        return _image_block(part["image"])
    return {"text": part.get("text", "")}


def _image_block(image: str) -> dict[str, Any]:
    """A Converse image block (raw bytes and their format) from a base64 image part."""
    if image.startswith(("http://", "https://")):
        raise ValueError(
            "AmazonBedrockServerModel takes image bytes, not URLs: pass the image itself "
            "(a PIL image, a path or bytes) in the message"
        )
    data = base64.b64decode(image)
    kind = next((kind for magic, kind in IMAGE_MAGIC.items() if data.startswith(magic)), None)
    if kind is None:
        raise ValueError("AmazonBedrockServerModel takes PNG, JPEG, GIF or WebP images")
    return {"image": {"format": kind, "source": {"bytes": data}}}


def _append_blocks(target: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
    for block in blocks:
        if target and "text" in block and "text" in target[-1]:
            target[-1] = {"text": f"{target[-1]['text']}\n{block['text']}"}
        else:
            target.append(block)


def _tool_config(
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


def _chat_message(response: dict[str, Any], grammar: Grammar | None) -> ChatMessage:
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
        token_usage=_token_usage(response.get("usage")),
        reasoning_content="".join(thoughts) or None,
    )


def _token_usage(usage: dict[str, Any] | None) -> TokenUsage:
    """Converse usage; prompt-cache reads are `cachedTokens`' Bedrock spelling."""
    usage = usage or {}
    return TokenUsage(
        input_tokens=int(usage.get("inputTokens") or 0),
        output_tokens=int(usage.get("outputTokens") or 0),
        cached_tokens=int(usage.get("cacheReadInputTokens") or 0),
    )


AmazonBedrockModel = AmazonBedrockServerModel
