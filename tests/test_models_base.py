"""The Model contract and ApiModel's rate limiting and retries, as a backend author relies on."""

from __future__ import annotations

import email.utils
import http.server
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydragent.config import compose
from hydragent.messages import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction
from hydragent.models import base, retry
from hydragent.models.api import ApiModel
from hydragent.models.base import REMOVE_PARAMETER, Model
from hydragent.models.retry import RateLimiter, RetryPolicy, call_with_retries
from hydragent.models.spec import Applied, Field, apply_generation
from hydragent.models.text import (
    StopScanner,
    get_tool_json_schema,
    supports_stop_parameter,
    trim_at_stop,
)

# --- completion kwargs ---------------------------------------------------------------------


class KwargsModel(Model):
    """Returns the request it would send, so that precedence is visible."""

    def generate(self, messages: list[Any], stop_sequences: Any = None, **kwargs: Any) -> Any:
        return self.completion_kwargs({"stop": stop_sequences, "max_tokens": 16}, kwargs)


def test_instance_kwargs_win_over_call_kwargs_which_win_over_explicit_arguments() -> None:
    model = KwargsModel(model_id="m", temperature=0.5)
    request = model([{"role": "user", "content": "hi"}], max_tokens=32, temperature=0.9, seed=1)
    assert request == {"max_tokens": 32, "temperature": 0.5, "seed": 1}


def test_remove_parameter_drops_a_key_that_would_otherwise_be_sent() -> None:
    model = KwargsModel(model_id="m", max_tokens=REMOVE_PARAMETER)
    request = model([{"role": "user", "content": "hi"}], stop_sequences=["END"])
    assert request == {"stop": ["END"]}


def test_the_base_contract_names_the_class_that_lacks_request_or_streaming() -> None:
    class Bare(Model):
        pass

    with pytest.raises(NotImplementedError, match=r"Bare does not implement request\(req\)"):
        Bare()([{"role": "user", "content": "hi"}])
    with pytest.raises(NotImplementedError, match=r"Bare does not implement request\(req\)"):
        next(iter(Bare().generate_stream([{"role": "user", "content": "hi"}])))


def test_calling_a_model_is_the_same_as_generate() -> None:
    model = KwargsModel(model_id="m")
    messages = [{"role": "user", "content": "hi"}]
    assert model(messages, max_tokens=3) == model.generate(messages, max_tokens=3)


# --- stop sequences ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_id",
    ["o3", "o3-2025-04-16", "openai/o3", "o4-mini", "azure/o4-mini", "gpt-5", "gpt-5-mini",
     "openai/gpt-5-nano", "grok-3", "xai/grok-4", "openrouter/x-ai/grok-4"],
)  # fmt: skip
def test_models_that_reject_stop_are_detected_with_or_without_a_provider(model_id: str) -> None:
    assert supports_stop_parameter(model_id) is False


@pytest.mark.parametrize(
    "model_id", ["o3-mini", "openai/o3-mini", "gpt-4o", "gpt-4.1-mini", "claude-3-5", None]
)
def test_other_models_and_o3_mini_support_stop(model_id: str | None) -> None:
    assert supports_stop_parameter(model_id) is True


def test_text_is_trimmed_at_the_earliest_stop_sequence() -> None:
    text = "Thought: add.\nObservation: 4\nCode: end"
    assert trim_at_stop(text, ["Code:", "Observation:"]) == "Thought: add.\n"
    assert trim_at_stop(text, ["<end_code>"]) == text
    assert trim_at_stop(None, ["x"]) is None


# --- tools ---------------------------------------------------------------------------------


class WeatherTool:
    name = "get_weather"
    description = "Weather for a city."
    inputs = {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "description": "Forecast days", "nullable": True},
        "photo": {"type": "image", "description": "A photo of the sky"},
        "extra": {"type": "any", "description": "Anything"},
    }


def test_tool_json_schema_is_built_from_a_tool_definition() -> None:
    schema = get_tool_json_schema(WeatherTool())
    function = schema["function"]
    assert schema["type"] == "function"
    assert function["name"] == "get_weather"
    assert function["description"] == "Weather for a city."
    properties = function["parameters"]["properties"]
    assert properties["city"] == {"type": "string", "description": "City name"}
    assert properties["days"] == {
        "type": "integer",
        "description": "Forecast days",
        "nullable": True,
    }
    assert properties["photo"]["type"] == "string"
    assert "type" not in properties["extra"]
    assert function["parameters"]["required"] == ["city", "photo", "extra"]


def test_native_tool_call_arguments_are_decoded_from_json() -> None:
    call = ChatMessageToolCall(
        id="c1", function=ChatMessageToolCallFunction(name="add", arguments='{"a": 1, "b": 2}')
    )
    message = Model().parse_tool_calls(ChatMessage(role="assistant", tool_calls=[call]))
    assert message.tool_calls[0].function.arguments == {"a": 1, "b": 2}


def test_a_json_blob_in_the_text_becomes_a_tool_call_with_custom_keys() -> None:
    model = Model(tool_name_key="tool", tool_arguments_key="params")
    text = 'I will call it.\nAction: {"tool": "add", "params": {"a": 1, "b": 2}}'
    message = model.parse_tool_calls(ChatMessage(role="assistant", content=text))
    (call,) = message.tool_calls
    assert (call.function.name, call.function.arguments) == ("add", {"a": 1, "b": 2})
    assert call.id


def test_a_json_blob_without_the_name_key_says_which_keys_it_found() -> None:
    text = '{"action": "add", "action_input": {"a": 1}}'
    with pytest.raises(ValueError) as error:
        Model().parse_tool_calls(ChatMessage(role="assistant", content=text))
    assert "'name'" in str(error.value)
    assert "'action', 'action_input'" in str(error.value)  # smolagents' wording


# --- serialisation -------------------------------------------------------------------------


class KeyedApiModel(ApiModel):
    def __init__(self, model_id: str, api_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(model_id=model_id, **kwargs)
        self.api_key = api_key


def test_to_dict_never_contains_a_secret_and_from_dict_rebuilds_the_model() -> None:
    model = KeyedApiModel(
        model_id="gpt-x",
        api_key="sk-live-123",
        requests_per_minute=30,
        retry={"attempts": 2},
        temperature=0.2,
        auth_token="tok-456",
    )
    data = model.to_dict()
    assert "sk-live-123" not in json.dumps(data) and "tok-456" not in json.dumps(data)
    assert "api_key" not in data
    assert data["model_id"] == "gpt-x" and data["temperature"] == 0.2
    rebuilt = KeyedApiModel.from_dict({k: v for k, v in data.items() if k != "auth_token"})
    assert rebuilt.model_id == "gpt-x"
    assert rebuilt.requests_per_minute == 30
    assert rebuilt.retry.attempts == 2
    assert rebuilt.kwargs == {"temperature": 0.2}


# --- rate limiting -------------------------------------------------------------------------


class FakeClock:
    """Stands in for the `time` module inside hydragent.models.base: sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_requests_to_the_requests_per_minute(monkeypatch: Any) -> None:
    clock = FakeClock()
    monkeypatch.setattr(retry, "time", clock)
    limiter = RateLimiter(requests_per_minute=30)  # one request every 2 s
    for _ in range(4):
        limiter.throttle()
    assert clock.sleeps == [2.0, 2.0, 2.0]


def test_no_rate_limit_means_no_waiting(monkeypatch: Any) -> None:
    clock = FakeClock()
    monkeypatch.setattr(retry, "time", clock)
    limiter = RateLimiter(requests_per_minute=None)
    for _ in range(3):
        limiter.throttle()
    assert clock.sleeps == []


# --- retries -------------------------------------------------------------------------------


class FakeResponse:
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class HTTPStatusError(Exception):
    """Shaped like an HTTP client's error: a status code and a response with headers."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"server said {status_code}")
        self.status_code = status_code
        self.response = FakeResponse(status_code, headers)


class APITimeoutError(Exception):
    """Named like the timeout errors of HTTP client libraries."""


class Flaky:
    """Fails with the given errors in turn, then answers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "answer"


def retry_waits(fn: Flaky, policy: RetryPolicy | None = None) -> list[float]:
    waits: list[float] = []
    call_with_retries(fn, policy or RetryPolicy(), sleep=waits.append)
    return waits


def test_retries_are_bounded_to_four_attempts_by_default() -> None:
    always_down = Flaky(*[HTTPStatusError(503) for _ in range(10)])
    waits: list[float] = []
    with pytest.raises(HTTPStatusError):
        call_with_retries(always_down, RetryPolicy(), sleep=waits.append)
    assert always_down.calls == 4
    assert len(waits) == 3


def test_backoff_starts_near_one_second_doubles_and_has_jitter() -> None:
    runs = [retry_waits(Flaky(*[HTTPStatusError(500)] * 3)) for _ in range(5)]
    for first, second, third in runs:
        assert 1.0 <= first <= 1.5
        assert 2.0 <= second <= 3.0
        assert 4.0 <= third <= 6.0
    assert len({run[0] for run in runs}) > 1, "jitter makes the waits differ between runs"


def test_retry_after_in_seconds_is_honoured() -> None:
    waits = retry_waits(Flaky(HTTPStatusError(429, {"Retry-After": "7"})))
    assert waits == [7.0]


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    (wait,) = retry_waits(Flaky(HTTPStatusError(503, {"retry-after": when})))
    assert 25.0 <= wait <= 30.0


def test_retry_after_is_capped_by_the_policy() -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    assert retry_waits(Flaky(HTTPStatusError(429, {"Retry-After": "3600"})), policy) == [10.0]


@pytest.mark.parametrize(
    "error",
    [HTTPStatusError(408), HTTPStatusError(409), HTTPStatusError(429), HTTPStatusError(500),
     HTTPStatusError(502), HTTPStatusError(503), HTTPStatusError(504), APITimeoutError("slow"),
     TimeoutError("timed out"), ConnectionResetError("reset"), ConnectionRefusedError("refused")],
    ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", "")),
)  # fmt: skip
def test_transient_failures_are_retried(error: BaseException) -> None:
    flaky = Flaky(error)
    assert call_with_retries(flaky, RetryPolicy(), sleep=lambda s: None) == "answer"
    assert flaky.calls == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_client_errors_are_never_retried(status: int) -> None:
    flaky = Flaky(HTTPStatusError(status))
    with pytest.raises(HTTPStatusError):
        call_with_retries(flaky, RetryPolicy(), sleep=lambda s: None)
    assert flaky.calls == 1


def test_each_retry_is_logged_with_its_cause(caplog: Any) -> None:
    """Each retry is logged with its cause; only the first of a cause in a minute is a
    warning on the console (issue 21: a dead endpoint gave 18 warning lines), the rest debug
    lines, while the progress bar counts them all."""
    caplog.set_level(logging.DEBUG, logger="hydragent.models")
    retry_waits(Flaky(HTTPStatusError(503), APITimeoutError("read timed out")))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "attempt 2/4" in lines[0] and "HTTP 503" in lines[0] and "server said 503" in lines[0]
    assert "attempt 3/4" in lines[1] and "APITimeoutError: read timed out" in lines[1]


class FlakyApiModel(ApiModel):
    def create_client(self) -> Flaky:
        return Flaky(HTTPStatusError(503))

    def generate(self, messages: list[Any], **kwargs: Any) -> ChatMessage:
        return ChatMessage(role="assistant", content=self.call_api(self.client))


def test_the_retry_policy_comes_from_the_retry_config_node() -> None:
    default = compose(["model=openai"]).retry
    assert RetryPolicy(**default) == RetryPolicy()
    no_retries = compose(["model=openai", "retry=none"]).model.retry
    model = FlakyApiModel(model_id="m", retry=no_retries)
    assert model.retry.attempts == 1
    with pytest.raises(HTTPStatusError):
        model.generate([{"role": "user", "content": "hi"}])
    assert model.client.calls == 1


# --- a real 429 + Retry-After round trip over HTTP -----------------------------------------


class RateLimitedHandler(http.server.BaseHTTPRequestHandler):
    """Answers 429 with Retry-After: 1 to the first request, then 200 with JSON."""

    requests: list[float] = []

    def do_GET(self) -> None:
        self.requests.append(time.monotonic())
        if len(self.requests) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.end_headers()
            return
        body = json.dumps({"answer": 42}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def rate_limited_server() -> Iterator[str]:
    RateLimitedHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RateLimitedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/answer"
    finally:
        server.shutdown()
        server.server_close()


class UrllibModel(ApiModel):
    def create_client(self) -> Any:
        return urllib.request.urlopen

    def fetch(self, url: str) -> dict[str, Any]:
        with self.call_api(self.client, url, timeout=10) as response:
            return json.loads(response.read())


def test_a_real_429_with_retry_after_is_waited_out_and_retried(
    rate_limited_server: str, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="hydragent.models")
    model = UrllibModel(model_id="m", retry={"initial_wait": 0.01, "jitter": 0.0})
    assert model.fetch(rate_limited_server) == {"answer": 42}
    assert len(RateLimitedHandler.requests) == 2
    (line,) = [r.getMessage() for r in caplog.records]
    assert "in 1.00s" in line, "the server's Retry-After, not the 0.01 s backoff"
    assert "HTTP 429" in line


# --- the suite's own network guard ---------------------------------------------------------


def test_the_suite_blocks_connections_beyond_loopback(tmp_path: Any) -> None:
    import socket

    # conftest's NetworkBlocked is a RuntimeError, so no client library retries it as an OSError
    with pytest.raises(RuntimeError, match="may only connect to loopback"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never sent
    with socket.socket() as sock, pytest.raises(RuntimeError, match="may only connect"):
        sock.connect(("example.com", 443))  # refused before any name lookup

    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen(1)
        client.connect(path)  # unix sockets are local: allowed


def test_the_stop_scanner_holds_back_a_possible_stop_until_it_is_sure() -> None:
    scanner = StopScanner(["</code>"])
    assert scanner.feed("print(1)</co") == "print(1)"
    assert scanner.feed("de> more") == ""
    assert scanner.stopped
    assert scanner.flush() == ""
    unfinished = StopScanner(["</code>"])
    assert unfinished.feed("a</c") == "a"
    assert unfinished.feed("at") == "</cat"
    assert unfinished.flush() == ""


# --- the request path ----------------------------------------------------------------------


class EchoModel(Model):
    """A backend as a backend author writes one: only `request(req)`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_id="echo", custom_role_conversions={"system": "user"}, **kwargs)
        self.requests: list[base.ModelRequest] = []
        self.busy = 0
        self.most_busy = 0
        self._lock = threading.Lock()

    def request(self, req: base.ModelRequest) -> ChatMessage:
        with self._lock:
            self.requests.append(req)
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        time.sleep(0.05)
        with self._lock:
            self.busy -= 1
        return ChatMessage(role="assistant", content=str(len(self.requests)))


def test_generate_builds_one_normalised_request_for_the_backend() -> None:
    model = EchoModel(generation={"max_tokens": 5, "stop": ["Z"]}, temperature=0.1)
    model(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        stop_sequences=["END"],
        top_p=0.5,
    )
    (req,) = model.requests
    assert [m["role"] for m in req.messages] == ["user"]  # converted once, then merged
    assert req.stop_sequences == ["END", "Z"]
    assert req.generation == {"max_tokens": 5}
    assert model.settings(req) == {"top_p": 0.5, "temperature": 0.1}


def test_the_runners_layers_act_on_the_request_cap_cache_and_meter(tmp_path: Any) -> None:
    from hydragent.runner.cache import ResponseCache, ResponseStore
    from hydragent.runner.request_path import Cap, Meter, route

    inner = EchoModel()
    store = ResponseStore(tmp_path / "cache.sqlite")
    model = route(inner, [Meter(), ResponseCache(store, "on", {"model": "echo"}), Cap(1)])
    questions = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]
    threads = [threading.Thread(target=model.generate, args=(q,)) for q in questions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert inner.most_busy == 1  # the cap holds under the cache
    assert model.generate(questions[0]).content in {"1", "2", "3", "4"}
    assert len(inner.requests) == 4  # the fifth call was a cache hit
    assert model is inner  # the same object: nothing to forward
    store.close()


def test_a_subclass_that_customises_generate_is_called_through_it_by_the_request_path() -> None:
    from hydragent.models.scripted import ScriptedModel
    from hydragent.runner.request_path import Cap, route

    class Logged(ScriptedModel):
        seen: list[Any] = []

        def generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> ChatMessage:
            Logged.seen.append(messages)
            return super().generate(messages, *args, **kwargs)

    wrapped = route(Logged(responses=["ok"]), [Cap(1)])
    assert wrapped.generate([{"role": "user", "content": "hi"}]).content == "ok"
    assert len(Logged.seen) == 1


SETTINGS = {
    "presence_penalty": 0.5,
    "top_k": 3,
    "reasoning_effort": "low",
    "temperature": 0.3,
    "stop": ["x"],
    "seed": 1,
}


@pytest.mark.parametrize(
    ("backend", "options", "unsent"),
    [
        ("TransformersModel", {"model_id": "org/tiny"}, ["presence_penalty"]),
        ("MLXModel", {"model_id": "org/tiny"}, ["presence_penalty"]),
        ("VLLMModel", {"model_id": "org/tiny"}, []),
        (
            "AmazonBedrockServerModel",
            {"model_id": "anthropic.claude"},
            ["presence_penalty", "reasoning_effort", "top_k"],
        ),
        ("InferenceClientModel", {"model_id": "org/tiny"}, ["top_k"]),
        (
            "OpenAIServerModel",
            {"model_id": "o3"},
            ["presence_penalty", "stop", "temperature", "top_k"],
        ),
    ],
)
def test_each_backend_names_the_generation_settings_it_never_sends(
    backend: str, options: dict[str, Any], unsent: list[str]
) -> None:
    """What validate and the run's log name: asked of the built instance, not its class."""
    import hydragent.models as models

    with models.dry_build():
        model = getattr(models, backend)(generation=SETTINGS, **options)
    assert model.unsent_generation() == unsent


# --- the generation mapping: precedence as a property --------------------------------------

MAPPING = {
    "max_tokens": "max_tokens",
    "temperature": "options.temperature",
    "top_k": Field("extra.top_k"),
    "reasoning_tokens": Field("thinking", lambda v: {"budget": v}),
    "stop": Applied("cut locally"),
    "seed": None,
}
KEYS = ["max_tokens", "temperature", "top_k", "reasoning_tokens", "stop", "seed", "other"]


@given(
    settings=st.dictionaries(
        st.sampled_from([*KEYS, "options", "extra", "thinking"]), st.integers()
    ),
    nested=st.dictionaries(st.sampled_from(["temperature", "x"]), st.integers()),
    generation=st.dictionaries(st.sampled_from(KEYS[:-1]), st.integers(min_value=1)),
)
def test_the_generation_node_fills_only_what_the_call_and_model_left_unset(
    settings: dict, nested: dict, generation: dict
) -> None:
    """Whatever a call or model already set (by portable or native name) is kept; every other
    mapped setting lands at its declared place; Applied and unmapped settings add nothing."""
    if nested:
        settings["options"] = dict(nested)
    before = {k: (dict(v) if isinstance(v, dict) else v) for k, v in settings.items()}
    body = apply_generation(dict(settings), generation, MAPPING)
    for key, value in before.items():
        if isinstance(value, dict):
            assert {k: body[key][k] for k in value} == value
        else:
            assert body[key] == value
    for key, value in generation.items():
        native = MAPPING[key]
        if native is None or isinstance(native, Applied) or key in before:
            continue
        field = native if isinstance(native, Field) else Field(native)
        *parents, leaf = field.path.split(".")
        given, placed = _walk(before, parents), _walk(body, parents)
        if not isinstance(given, dict):  # a parent the user set to a non-dict: theirs stands
            assert placed == given
        elif leaf in given:
            assert placed[leaf] == given[leaf]
        else:
            assert placed[leaf] == (field.convert(value) if field.convert else value)
    added = set(body) - set(before)
    assert added <= {"max_tokens", "options", "extra", "thinking"}


def _walk(body: dict, parents: list[str]) -> object:
    """The dict at `parents` in `body` ({} where absent), or the non-dict value found on the
    way."""
    node: object = body
    for parent in parents:
        node = node.get(parent, {}) if isinstance(node, dict) else node
        if not isinstance(node, dict):
            return node
    return node
