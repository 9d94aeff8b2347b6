"""OpenAIServerModel: OpenAI Chat Completions, or any OpenAI-compatible server via `api_base`.

The functions at the top convert between hydragent messages and the OpenAI wire format.
Azure, vLLM-server, the HF InferenceClient, LiteLLM and the LiteLLM Router all speak the same
shapes (as objects or dicts), so they reuse these rather than keeping their own copies.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Generator, Iterable, Iterator
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
    StopScanner,
    describe_error,
    get_tool_json_schema,
    status_code_of,
    supports_stop_parameter,
    trim_at_stop,
)

# --- OpenAI wire format, shared by every OpenAI-style backend -----------------------------


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from an SDK object or a plain dict (LiteLLM and HF mix both)."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def to_openai_messages(prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prepared messages in the wire format: tool calls paired by id, no hydragent-only roles.

    A message carrying `tool_calls` is sent as an assistant turn with OpenAI tool calls, and
    one carrying `tool_call_id` as a `tool` turn, whatever the role conversion says: OpenAI
    rejects unpaired calls. Any remaining `tool-call`/`tool-response` role becomes
    assistant/user, since the wire protocol has no such roles.
    """
    wire: list[dict[str, Any]] = []
    for entry in prepared:
        role = TOOL_ROLE_CONVERSIONS.get(entry["role"], entry["role"])
        message: dict[str, Any] = {"role": role, "content": _wire_content(entry["content"])}
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
    return TokenUsage(input_tokens=int(prompt), output_tokens=int(completion))


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


class ModelServerError(RuntimeError):
    """A request the server refused for good: its status code and its own words."""

    def __init__(self, message: str, status_code: int | None) -> None:
        super().__init__(message)
        self.status_code = status_code


@contextlib.contextmanager
def server_errors_explained(model_name: str) -> Iterator[None]:
    """Re-raise an HTTP failure (after retries) as one line with the status and server text."""
    try:
        yield
    except Exception as error:
        status = status_code_of(error)
        if status is None:
            raise
        message = describe_error(error)
        body = _response_text(error)
        if body and body[:80] not in message:
            message = f"{message} | server said: {body[:300]}"
        raise ModelServerError(f"{model_name} request failed: {message}", status) from error


def _response_text(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):  # botocore: the message is already in str(error)
        return ""
    try:
        return " ".join(str(getattr(response, "text", "") or "").split())
    except Exception:  # a streamed body that was never read
        return ""


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
            if not content and not raw_calls:
                continue
            yield ChatMessageStreamDelta(
                content=content,
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
    huggingface_hub, litellm): they differ only in the request fields they add and in the call
    that sends the request, so each overrides `send` and, where needed, `grammar_request`,
    `connection_kwargs` or `response_metadata`."""

    takes_seed: ClassVar[bool] = True  # OpenAI, vLLM, TGI and llama.cpp servers take `seed`

    def send(self, request: dict[str, Any]) -> Any:
        """Send one chat-completions request (streaming when `request["stream"]` is set)."""
        raise NotImplementedError(f"{type(self).__name__} must implement send")

    def request_model_id(self) -> str | None:
        return self.model_id

    def grammar_request(self, grammar: Grammar) -> dict[str, Any]:
        """The request fields that enforce `grammar` on this server."""
        return {"response_format": grammar.to_response_format()}

    def connection_kwargs(self) -> dict[str, Any]:
        """Per-request endpoint settings, for clients that take them with each call."""
        return {}

    def response_metadata(self, response: Any) -> dict[str, Any]:
        """Facts about who answered (e.g. a router's deployment), kept on the message."""
        return {}

    def build_request(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None,
        response_format: dict[str, Any] | None,
        tools_to_call_from: list[Any] | None,
        grammar: Grammar | dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        """The chat-completions request; instance kwargs win over call kwargs over arguments."""
        resolved = self.resolve_grammar(grammar, response_format)
        tools = openai_tools(tools_to_call_from)
        explicit: dict[str, Any] = {
            "model": self.request_model_id(),
            "messages": to_openai_messages(self.prepare(messages, images_as_urls=True)),
            "stop": stop_sequences if supports_stop_parameter(self.model_id) else None,
            "tools": tools,
            "tool_choice": "required" if tools else None,
            **(self.grammar_request(resolved) if resolved else {}),
            **self.connection_kwargs(),
        }
        return self.completion_kwargs(explicit, kwargs)

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        request = self.build_request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        with server_errors_explained(type(self).__name__):
            response = self.call_api(parse_guard, self.send, request)
        message = chat_message_from_completion(
            response, None if "stop" in request else stop_sequences
        )
        message.metadata.update(self.response_metadata(response))
        return message

    def generate_stream(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Generator[ChatMessageStreamDelta]:
        """Streams deltas, then the usage; only opening the stream is retried, not its body."""
        request = self.build_request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        trim = None if "stop" in request else stop_sequences
        request.update(stream=True, stream_options={"include_usage": True})
        with server_errors_explained(type(self).__name__):
            stream = self.call_api(self.send, request)
        yield from stream_deltas_from_chunks(stream, trim)


class OpenAIServerModel(ChatCompletionsModel):
    """OpenAI Chat Completions through the official client, or any compatible server.

    The client's own retries are off (`max_retries=0`) so the `retry` policy is the only one;
    with `api_base` set and no key anywhere, the key "EMPTY" is sent (local servers need none);
    set `client_kwargs={"timeout": ...}` for a per-request deadline. Tools are sent with
    `tool_choice="required"` unless a call says otherwise, as smolagents does.
    """

    supported_grammars: ClassVar[frozenset[str]] = frozenset({"json_object", "json_schema"})
    default_role_conversions: ClassVar[dict[str, str] | None] = dict(TOOL_ROLE_CONVERSIONS)
    extra: ClassVar[str] = "openai"

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

    def _openai_module(self) -> Any:
        try:
            import openai
        except ImportError as error:
            raise missing_extra(type(self).__name__, self.extra) from error
        return openai

    def create_client(self) -> Any:
        openai = self._openai_module()
        api_key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if api_key is None and self.api_base:
            api_key = "EMPTY"  # local OpenAI-compatible servers need no key
        return openai.OpenAI(
            **{
                "base_url": self.api_base,
                "api_key": api_key,
                "organization": self.organization,
                "project": self.project,
                "max_retries": 0,
                **self.client_kwargs,
            }
        )

    def grammar_request(self, grammar: Grammar) -> dict[str, Any]:
        """The request fields that enforce `grammar` on this server.

        `json_schema_style="json_object_schema"` sends `{"type": "json_object", "schema": ...}`,
        the dialect of servers without OpenAI's `json_schema` type (llama-cpp-python's server).
        """
        if grammar.type == "json_schema" and self.json_schema_style == "json_object_schema":
            return {"response_format": {"type": "json_object", "schema": grammar.schema}}
        return {"response_format": grammar.to_response_format()}

    def send(self, request: dict[str, Any]) -> Any:
        """POST the request as built through the SDK's own `post` (auth, headers, timeouts
        and error types kept) and read the reply as plain JSON, so `message.raw` is the
        server's body. `chat.completions.create` would first walk the plain-JSON request
        against the SDK's TypedDicts, and then build a typed ChatCompletion that hydragent
        reads once; each cost about a fifth of a tool-calling call's client CPU, and that CPU
        sets the runner's pace at high concurrency (docs/benchmarks.md). Streams, and a
        client that is not the openai SDK's, go through `create`."""
        import httpx

        openai = self._openai_module()
        client = self.client
        if request.get("stream") or not isinstance(client, openai.OpenAI):
            return client.chat.completions.create(**request)
        body = dict(request)
        options = {
            option: body.pop(argument)
            for argument, option in _REQUEST_OPTIONS.items()
            if argument in body
        }
        reply = client.post("/chat/completions", body=body, options=options, cast_to=httpx.Response)
        return reply.json()


OpenAIModel = OpenAIServerModel
