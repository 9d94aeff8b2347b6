"""InferenceClientModel against a loopback server through `InferenceClient(base_url=...)`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.servers import Fault, LoopbackServer, Reply, openai_app, running

from hydragent.models import HfApiModel, InferenceClientModel
from hydragent.models.errors import MalformedResponseError

pytestmark = pytest.mark.timeout(60)
FAST_RETRY = {"attempts": 3, "initial_wait": 0.01, "jitter": 0.0}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(openai_app) as loopback:
        yield loopback


def make_model(server: LoopbackServer, **kwargs: object) -> InferenceClientModel:
    return InferenceClientModel(
        "Qwen/Qwen2.5-0.5B-Instruct",
        base_url=f"{server.url}/v1",
        token="hf_test",
        retry=FAST_RETRY,
        **kwargs,  # type: ignore[arg-type]
    )


def test_base_url_and_model_id_together(server: LoopbackServer) -> None:
    message = make_model(server).generate([{"role": "user", "content": "hi"}], stop_sequences=["x"])
    received = server.requests[0]
    assert received.path == "/v1/chat/completions"
    assert received.headers["Authorization"] == "Bearer hf_test"
    assert received.json["model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert received.json["stop"] == ["x"]
    assert message.content == "Hello from the loopback server."
    assert message.token_usage.output_tokens == 5


def test_response_format_is_really_sent(server: LoopbackServer) -> None:
    server.replies.append(Reply(content='{"answer": "4"}'))
    message = make_model(server).generate(
        [{"role": "user", "content": "2+2?"}], grammar={"type": "json_schema", "schema": SCHEMA}
    )
    # huggingface_hub rewrites json_schema into TGI's grammar form for URL endpoints.
    assert server.requests[0].json["response_format"] == {"type": "json_object", "value": SCHEMA}
    assert json.loads(message.content or "") == {"answer": "4"}


def test_structured_output_on_an_unable_provider_fails_before_any_call() -> None:
    model = InferenceClientModel("some/model", provider="together", token="hf_x")
    assert model.capabilities.grammars == frozenset()
    with pytest.raises(
        ValueError, match="only supports structured outputs with these providers: cerebras"
    ):
        model.generate([{"role": "user", "content": "hi"}], response_format={"type": "json_object"})


def test_tools_and_tool_calls(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "search", "arguments": {"q": "x"}}])
    )
    tool = {"name": "search", "description": "Web search", "parameters": {"type": "object"}}
    message = make_model(server).generate(
        [{"role": "user", "content": "hi"}], tools_to_call_from=[tool]
    )
    assert server.requests[0].json["tools"][0]["function"]["name"] == "search"
    assert message.tool_calls is not None and message.tool_calls[0].function.name == "search"


def test_streaming_with_usage(server: LoopbackServer) -> None:
    deltas = list(make_model(server).generate_stream([{"role": "user", "content": "hi"}]))
    assert "".join(d.content or "" for d in deltas) == "Hello from the loopback server."
    assert server.requests[0].json["stream_options"] == {"include_usage": True}
    assert any(d.token_usage and d.token_usage.output_tokens == 5 for d in deltas)


def test_token_and_api_key_together_is_an_error() -> None:
    with pytest.raises(ValueError, match="both `token` and `api_key`"):
        InferenceClientModel("m", token="a", api_key="b")
    assert HfApiModel("m", api_key="b").token == "b"


def test_failures_retry_then_surface_with_the_servers_text(server: LoopbackServer) -> None:
    server.faults.append(Fault(status=429, retry_after="0.05"))
    assert make_model(server).generate([{"role": "user", "content": "hi"}]).content
    server.always_fail = Fault(status=500, body="model crashed")
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError, match=r"500"):
        make_model(server).generate([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 2 + FAST_RETRY["attempts"]


def test_the_timeout_parameter_ends_a_hung_request(server: LoopbackServer) -> None:
    server.faults.extend([Fault(kind="hang", seconds=30)] * 2)
    model = make_model(server, timeout=0.3)
    model.retry.attempts = 2
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        model.generate([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 2


def test_a_malformed_body_is_a_clear_error(server: LoopbackServer) -> None:
    server.faults.append(Fault(kind="malformed"))
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        make_model(server).generate([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_and_its_tokens_arrive_through_the_hub_client(
    server: LoopbackServer, field: str
) -> None:
    """`reasoning` (TGI, the HF router) or `reasoning_content` (vLLM, DeepSeek), and the usage
    details: huggingface_hub keeps the undeclared ones only on its objects' attributes."""
    server.replies.append(
        Reply(content="42", reasoning="six times seven", reasoning_field=field, cached_tokens=2)
    )
    message = make_model(server).generate([{"role": "user", "content": "6*7?"}])
    assert message.content == "42"
    assert message.reasoning_content == "six times seven"
    assert (message.token_usage.reasoning_tokens, message.token_usage.cached_tokens) == (3, 2)


def test_reasoning_streams_through_the_hub_client(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content="42", reasoning="six times seven", reasoning_field="reasoning_content")
    )
    deltas = list(make_model(server).generate_stream([{"role": "user", "content": "6*7?"}]))
    assert "".join(d.reasoning_content or "" for d in deltas) == "six times seven"
    assert "".join(d.content or "" for d in deltas) == "42"


def test_grammars_are_a_capability_of_the_provider() -> None:
    assert InferenceClientModel("m", token="t").capabilities.grammars == frozenset()
    able = InferenceClientModel("m", provider="cerebras", token="t")
    assert able.capabilities.grammars == {"json_object", "json_schema"}
    assert InferenceClientModel("m", base_url="http://127.0.0.1:9", token="t").capabilities.grammars


def test_reasoning_effort_reaches_the_server_in_the_body(server: LoopbackServer) -> None:
    """chat_completion has no reasoning_effort parameter: it travels in extra_body, which the
    client merges into the JSON body."""
    model = make_model(server, generation={"reasoning_effort": "high", "max_tokens": 20})
    model.generate([{"role": "user", "content": "hi"}])
    (sent,) = server.requests
    assert sent.json["reasoning_effort"] == "high" and sent.json["max_tokens"] == 20
    assert model.unsent_generation() == []
