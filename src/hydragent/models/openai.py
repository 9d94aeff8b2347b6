"""OpenAIServerModel: OpenAI Chat Completions, or any OpenAI-compatible server via `api_base`.

The functions at the top convert between hydragent messages and the OpenAI wire format.
Azure, vLLM-server, the HF InferenceClient, LiteLLM and the LiteLLM Router all speak the same
shapes (as objects or dicts), so they reuse these rather than keeping their own copies.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Generator, Iterable, Mapping
from typing import Any, ClassVar, Literal

from hydragent.grammar import Grammar
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
    content_to_text,
)
from hydragent.models.base import (
    TOOL_ROLE_CONVERSIONS,
    ApiModel,
    ModelRequest,
    StopScanner,
    apply_generation,
    get_tool_json_schema,
    trim_at_stop,
)

# --- OpenAI wire format, shared by every OpenAI-style backend -----------------------------


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from an SDK object or a plain dict (LiteLLM and HF mix both). Attributes
    come first: huggingface_hub's types are dicts whose items keep only the fields they
    declare, while their attributes also keep the rest (`reasoning_content`, usage details)."""
    if obj is None:
        return default
    if type(obj) is not dict:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return obj.get(name, default) if isinstance(obj, Mapping) else default


def to_openai_messages(prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prepared messages in the wire format: tool calls paired by id, no hydragent-only roles.

    A message carrying `tool_calls` is sent as an assistant turn with OpenAI tool calls, and
    one carrying `tool_call_id` as a `tool` turn, whatever the role conversion says: OpenAI
    rejects unpaired calls. Roles were converted once, by `Model.prepare`.
    """
    wire: list[dict[str, Any]] = []
    for entry in prepared:
        message: dict[str, Any] = {
            "role": entry["role"],
            "content": _wire_content(entry["content"]),
        }
        if entry.get("tool_calls"):
            message["role"] = MessageRole.ASSISTANT.value
            message["tool_calls"] = [_wire_tool_call(call) for call in entry["tool_calls"]]
        elif entry.get("tool_call_id"):
            message = {
                "role": "tool",
                "tool_call_id": entry["tool_call_id"],
                "content": content_to_text(entry["content"]),
            }
        wire.append(message)
    return wire


def _wire_content(content: Any) -> Any:
    """A lone text part goes as a plain string: the same message to the server, and the openai
    SDK's per-request transform walks every typed part, which made each call ~25% slower than
    the raw client (benchmarks/p2_overhead.py). Images and several parts stay a list."""
    if isinstance(content, list) and len(content) == 1:
        part = content[0]
        if isinstance(part, dict) and part.get("type") == "text" and set(part) == {"type", "text"}:
            return part["text"]
    return content


def _wire_tool_call(call: ChatMessageToolCall) -> dict[str, Any]:
    arguments = call.function.arguments
    return {
        "id": call.id,
        "type": "function",
        "function": {
            "name": call.function.name,
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def token_usage_from(usage: Any) -> TokenUsage:
    """TokenUsage from an OpenAI-style usage object or dict; zeros when the server sent none."""
    prompt = field_of(usage, "prompt_tokens") or field_of(usage, "input_tokens") or 0
    completion = field_of(usage, "completion_tokens") or field_of(usage, "output_tokens") or 0
    completion_details = field_of(usage, "completion_tokens_details")
    prompt_details = field_of(usage, "prompt_tokens_details")
    return TokenUsage(
        input_tokens=int(prompt),
        output_tokens=int(completion),
        reasoning_tokens=_count(field_of(completion_details, "reasoning_tokens")),
        cached_tokens=_count(field_of(prompt_details, "cached_tokens")),
    )


def _count(value: Any) -> int:
    """A token count when the server sent one (a number), else 0."""
    return int(value) if isinstance(value, int | float) else 0


def reasoning_of(message: Any) -> str | None:
    """The reasoning text of a message or delta: `reasoning_content` (DeepSeek, vLLM, LiteLLM)
    or `reasoning` (OpenRouter, Ollama, newer vLLM)."""
    text = field_of(message, "reasoning_content")
    if not isinstance(text, str):
        text = field_of(message, "reasoning")
    return text if isinstance(text, str) and text else None


def tool_calls_from(raw_calls: Iterable[Any] | None) -> list[ChatMessageToolCall] | None:
    calls = [
        ChatMessageToolCall(
            id=str(field_of(call, "id") or f"call_{index}"),
            type=field_of(call, "type") or "function",
            function=ChatMessageToolCallFunction(
                name=field_of(field_of(call, "function"), "name"),
                arguments=field_of(field_of(call, "function"), "arguments") or {},
            ),
        )
        for index, call in enumerate(raw_calls or [])
    ]
    return calls or None


def chat_message_from_completion(
    response: Any, stop_sequences: list[str] | None = None
) -> ChatMessage:
    """The first choice of a chat completion as a ChatMessage; `stop_sequences` are trimmed."""
    choices = field_of(response, "choices") or []
    if not choices:
        raise ValueError(f"server returned a completion with no choices: {str(response)[:300]}")
    message = field_of(choices[0], "message")
    content = field_of(message, "content")
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content=trim_at_stop(content, stop_sequences),
        tool_calls=tool_calls_from(field_of(message, "tool_calls")),
        raw=response,
        token_usage=token_usage_from(field_of(response, "usage")),
        reasoning_content=reasoning_of(message),
    )


class MalformedResponseError(ValueError):
    """The server answered 2xx with a body that is not a valid completion."""


def parse_guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call `fn`, turning a JSON decoding failure into an error that says what happened."""
    try:
        return fn(*args, **kwargs)
    except json.JSONDecodeError as error:
        raise MalformedResponseError(
            f"the server's response body is not valid JSON ({error.msg} at char {error.pos})"
        ) from error


class IncompleteStreamError(ConnectionError):
    """The stream ended before the server said it had finished (no finish_reason)."""


def stream_deltas_from_chunks(
    chunks: Iterable[Any], stop_sequences: list[str] | None = None
) -> Generator[ChatMessageStreamDelta]:
    """ChatMessageStreamDeltas from OpenAI-style stream chunks; a cut-off stream is an error.

    `stop_sequences` are for models that reject `stop`: text is cut at the first one, even
    when it arrives split over chunks, and the rest of the stream is still read for its usage.
    """
    finished = False
    scanner = StopScanner(stop_sequences)
    for chunk in chunks:
        usage = field_of(chunk, "usage")
        if usage:
            yield ChatMessageStreamDelta(content="", token_usage=token_usage_from(usage))
        for choice in (field_of(chunk, "choices") or [])[:1]:
            finished = finished or bool(field_of(choice, "finish_reason"))
            delta = field_of(choice, "delta")
            content = field_of(delta, "content")
            if content and stop_sequences:
                content = scanner.feed(content)
            raw_calls = field_of(delta, "tool_calls")
            reasoning = reasoning_of(delta)
            if not content and not raw_calls and not reasoning:
                continue
            yield ChatMessageStreamDelta(
                content=content,
                reasoning_content=reasoning,
                tool_calls=[
                    ChatMessageToolCallStreamDelta(
                        index=field_of(call, "index"),
                        id=field_of(call, "id"),
                        type=field_of(call, "type"),
                        function=ChatMessageToolCallFunction(
                            name=field_of(field_of(call, "function"), "name") or "",
                            arguments=field_of(field_of(call, "function"), "arguments") or "",
                        ),
                    )
                    for call in raw_calls
                ]
                if raw_calls
                else None,
            )
    if not finished:
        raise IncompleteStreamError(
            "the server's stream ended before it finished (no finish_reason): truncated response"
        )
    tail = scanner.flush()
    if tail:
        yield ChatMessageStreamDelta(content=tail)


def openai_tools(tools_to_call_from: list[Any] | None) -> list[dict[str, Any]] | None:
    return (
        [get_tool_json_schema(tool) for tool in tools_to_call_from] if tools_to_call_from else None
    )


def missing_extra(cls_name: str, extra: str) -> ImportError:
    return ImportError(f"{cls_name} needs the `{extra}` extra: pip install 'hydragent[{extra}]'")


def extra_problem(module: str, cls_name: str, extra: str) -> list[tuple[str, str]]:
    """[("_target_", how to install)] when `module` cannot be imported, else []."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec: None means "blocked"
        found = sys.modules.get(module) is not None
    if found:
        return []
    return [("_target_", f"{cls_name} needs the '{extra}' extra: pip install 'hydragent[{extra}]'")]


# OpenAI reasoning models: max_completion_tokens, reasoning_effort, no sampling settings.
_REASONING_MODEL = re.compile(r"^(o1|o3|o4|gpt-5)($|[-.])")

#: generation node -> chat-completions names (None: not sent).
CHAT_GENERATION_NAMES: dict[str, str | None] = {
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
REASONING_GENERATION_NAMES: dict[str, str | None] = {
    "max_tokens": "max_completion_tokens",
    "seed": "seed",
    "reasoning_effort": "reasoning_effort",
}


def is_reasoning_model(model_id: str | None) -> bool:
    """OpenAI o-series and gpt-5 (with or without a provider prefix)."""
    return bool(model_id) and bool(_REASONING_MODEL.match(str(model_id).split("/")[-1]))


# `chat.completions.create` arguments that are request options, not body fields.
_REQUEST_OPTIONS = {
    "extra_headers": "headers",
    "extra_query": "params",
    "extra_body": "extra_json",
    "timeout": "timeout",
}


# --- the backend ---------------------------------------------------------------------------


class ChatCompletionsModel(ApiModel):
    """The shape shared by backends whose client speaks OpenAI chat completions (openai,
    huggingface_hub, litellm): they differ in the call that sends the body (`send`) and in a
    few body fields (`grammar_request`, `connection_kwargs`, `generation_names`)."""

    takes_seed: ClassVar[bool] = True  # OpenAI, vLLM, TGI and llama.cpp servers take `seed`
    native_tools: ClassVar[bool] = True
    takes_images: ClassVar[bool] = True
    returns_reasoning: ClassVar[bool] = True
    wire_roles: ClassVar[dict[str, str] | None] = dict(TOOL_ROLE_CONVERSIONS)
    images_as_urls: ClassVar[bool] = True

    def send(self, body: dict[str, Any]) -> Any:
        """Send one chat-completions body (streaming when `body["stream"]` is set)."""
        raise NotImplementedError(f"{type(self).__name__} must implement send")

    def request_model_id(self) -> str | None:
        return self.model_id

    def grammar_request(self, grammar: Grammar) -> dict[str, Any]:
        """The body fields that enforce `grammar` on this server."""
        return {"response_format": grammar.to_response_format()}

    def connection_kwargs(self) -> dict[str, Any]:
        """Per-request endpoint settings, for clients that take them with each call."""
        return {}

    def generation_names(self) -> dict[str, str | None]:
        """How the generation node's settings are spelled in this body."""
        if is_reasoning_model(self.model_id):
            return REASONING_GENERATION_NAMES
        return CHAT_GENERATION_NAMES

    def sent_generation(self) -> frozenset[str]:
        sent = {name for name, native in self.generation_names().items() if native}
        return frozenset(sent | ({"stop"} if self.supports_stop_parameter else set()))

    def response_metadata(self, response: Any) -> dict[str, Any]:
        """Facts about who answered (e.g. a router's deployment), kept on the message."""
        return {}

    def wire_request(self, req: ModelRequest) -> dict[str, Any]:
        """The chat-completions body of a request. `tool_choice` is "required" with tools
        unless the call says otherwise, left out when None or without tools (as smolagents)."""
        settings = self.settings(req)
        tool_choice = settings.pop("tool_choice", "required")
        body: dict[str, Any] = {
            "model": self.request_model_id(),
            "messages": to_openai_messages(req.messages),
        }
        if req.stop_sequences and self.supports_stop_parameter:
            body["stop"] = req.stop_sequences
        tools = req.tool_schemas()
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if req.grammar is not None:
            body.update(self.grammar_request(req.grammar))
        body.update({k: v for k, v in self.connection_kwargs().items() if v is not None})
        if "extra_body" in body and "extra_body" in settings:  # the call's fields win
            settings["extra_body"] = {**body["extra_body"], **settings["extra_body"]}
        body.update(settings)
        apply_generation(body, req.generation, self.generation_names())
        return {k: v for k, v in body.items() if v is not None}

    def request(self, req: ModelRequest) -> ChatMessage:
        body = self.wire_request(req)
        response = self.call_api(parse_guard, self.send, body)
        message = chat_message_from_completion(
            response, None if "stop" in body else req.stop_sequences
        )
        message.metadata.update(self.response_metadata(response))
        return message

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta]:
        """Streams deltas, then the usage; only opening the stream is retried, not its body.
        The stream opens on the first `next()`, as a generator should."""
        body = self.wire_request(req)
        trim = None if "stop" in body else req.stop_sequences
        body.update(stream=True, stream_options={"include_usage": True})
        yield from stream_deltas_from_chunks(self.call_api(self.send, body), trim)


class OpenAIServerModel(ChatCompletionsModel):
    """OpenAI Chat Completions through the official client, or any compatible server.

    The client's own retries are off (`max_retries=0`) so the `retry` policy is the only one;
    with `api_base` set and no key anywhere, the key "EMPTY" is sent (local servers need none);
    set `client_kwargs={"timeout": ...}` for a per-request deadline. Tools are sent with
    `tool_choice="required"` unless a call says otherwise, as smolagents does. As in
    smolagents, the client is built at construction, so a missing key fails there (except
    inside `dry_build()`, where `environment_problems()` reports it).
    """

    supported_grammars: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})
    extra: ClassVar[str] = "openai"
    key_env: ClassVar[str] = "OPENAI_API_KEY"

    def __init__(
        self,
        model_id: str,
        api_base: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool = False,
        json_schema_style: Literal["openai", "json_object_schema"] = "openai",
        **kwargs: Any,
    ) -> None:
        if json_schema_style not in ("openai", "json_object_schema"):
            raise ValueError(
                f"json_schema_style must be 'openai' or 'json_object_schema', "
                f"got {json_schema_style!r}"
            )
        self.json_schema_style = json_schema_style
        self.api_base = api_base
        self.api_key = api_key
        self.organization = organization
        self.project = project
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )
        self.build_client()

    def _openai_module(self) -> Any:
        try:
            import openai
        except ImportError as error:
            raise missing_extra(type(self).__name__, self.extra) from error
        return openai

    def resolved_api_key(self) -> str | None:
        """The key the client will send: given, from the environment, or "EMPTY" for a
        local server (api_base set), which needs none."""
        api_key = self.api_key or os.environ.get(self.key_env)
        if api_key is None and self.api_base:
            api_key = "EMPTY"
        return api_key

    def environment_problems(self) -> list[tuple[str, str]]:
        problems = extra_problem("openai", type(self).__name__, self.extra)
        if self._client is None and not self.resolved_api_key():
            problems.append(
                (
                    "api_key",
                    f"{type(self).__name__} needs a key: set {self.key_env} or model.api_key, "
                    "or point model.api_base at a local server",
                )
            )
        return problems

    def create_client(self) -> Any:
        openai = self._openai_module()
        return openai.OpenAI(
            **{
                "base_url": self.api_base,
                "api_key": self.resolved_api_key(),
                "organization": self.organization,
                "project": self.project,
                "max_retries": 0,
                **self.client_kwargs,
            }
        )

    def grammar_request(self, grammar: Grammar) -> dict[str, Any]:
        """The body fields that enforce `grammar` on this server.

        `json_schema_style="json_object_schema"` sends `{"type": "json_object", "schema": ...}`,
        the dialect of servers without OpenAI's `json_schema` type (llama-cpp-python's server).
        """
        if grammar.type == "json_schema" and self.json_schema_style == "json_object_schema":
            return {"response_format": {"type": "json_object", "schema": grammar.schema}}
        return {"response_format": grammar.to_response_format()}

    def send(self, body: dict[str, Any]) -> Any:
        """POST the body as built through the SDK's own `post` (auth, headers, timeouts
        and error types kept) and read the reply as plain JSON, so `message.raw` is the
        server's body. `chat.completions.create` would first walk the plain-JSON request
        against the SDK's TypedDicts, and then build a typed ChatCompletion that hydragent
        reads once; each cost about a fifth of a tool-calling call's client CPU, and that CPU
        sets the runner's pace at high concurrency (docs/benchmarks.md). Streams, and a
        client that is not the openai SDK's (a mock, a user's), go through `create`."""
        client = self.client
        if body.get("stream") or type(client).__module__.split(".")[0] != "openai":
            return client.chat.completions.create(**body)
        body = dict(body)
        options = {
            option: body.pop(argument)
            for argument, option in _REQUEST_OPTIONS.items()
            if argument in body
        }
        reply = client.post("/chat/completions", body=body, options=options, cast_to=str)
        return json.loads(reply)


OpenAIModel = OpenAIServerModel
