"""LiteLLMModel against a loopback OpenAI-compatible server (`openai/` prefix + api_base)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.servers import Fault, LoopbackServer, Reply, openai_app, running

from hydragent.models import LiteLLMModel, dry_build

pytestmark = pytest.mark.timeout(120)
FAST_RETRY = {"attempts": 3, "initial_wait": 0.01, "jitter": 0.0}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(openai_app) as loopback:
        yield loopback


def make_model(server: LoopbackServer, **kwargs: object) -> LiteLLMModel:
    return LiteLLMModel(
        "openai/m",
        api_base=f"{server.url}/v1",
        api_key="sk-lite",
        retry=FAST_RETRY,
        **kwargs,  # type: ignore[arg-type]
    )


def test_generate_sends_stop_tools_and_response_format(server: LoopbackServer) -> None:
    server.replies.append(Reply(content='{"n": 1}'))
    tool = {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}
    model = make_model(server)
    message = model.generate(
        [{"role": "user", "content": "hi"}], stop_sequences=["END"], grammar={"type": "json_object"}
    )
    sent = server.requests[0].json
    assert server.requests[0].headers["Authorization"] == "Bearer sk-lite"
    assert (sent["model"], sent["stop"], sent["response_format"]) == (
        "m",
        ["END"],
        {"type": "json_object"},
    )
    assert json.loads(message.content or "") == {"n": 1}
    server.replies.append(Reply(content=None, tool_calls=[{"name": "f", "arguments": {"a": 1}}]))
    message = model.generate([{"role": "user", "content": "hi"}], tools_to_call_from=[tool])
    assert server.requests[1].json["tool_choice"] == "required"
    assert message.tool_calls is not None and message.tool_calls[0].function.name == "f"


def test_streaming_yields_text_and_usage(server: LoopbackServer) -> None:
    deltas = list(make_model(server).generate_stream([{"role": "user", "content": "hi"}]))
    assert "".join(d.content or "" for d in deltas) == "Hello from the loopback server."
    assert any(d.token_usage and d.token_usage.output_tokens == 5 for d in deltas)


def test_usage_null_is_zero(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="ok", usage=None))
    assert (
        make_model(server).generate([{"role": "user", "content": "hi"}]).token_usage.total_tokens
        == 0
    )


@pytest.mark.parametrize(
    ("model_id", "flat"),
    [("ollama/llama3", True), ("groq/x", True), ("cerebras/x", True), ("openai/x", False)],
)
def test_flattening_defaults_by_provider(model_id: str, flat: bool) -> None:
    assert LiteLLMModel(model_id).flatten_messages_as_text is flat


@pytest.mark.parametrize(
    ("model_id", "seeded"), [("openai/x", True), ("anthropic/claude-3-5-sonnet", False)]
)
def test_the_run_seed_goes_only_to_providers_that_take_one(model_id: str, seeded: bool) -> None:
    """litellm refuses `seed` for Anthropic on every call: neither the run's seed nor the
    generation node's (which follows it) may reach the body there."""
    model = LiteLLMModel(model_id, generation={"seed": 4, "max_tokens": 8})
    model.apply_seed(4)
    assert model.kwargs.get("seed") == (4 if seeded else None)
    body = model.wire_request(model.build_request([{"role": "user", "content": "hi"}]))
    assert body.get("seed") == (4 if seeded else None) and body["max_tokens"] == 8


def test_only_hydragent_retries_and_they_are_bounded(server: LoopbackServer) -> None:
    server.always_fail = Fault(status=503, body="busy")
    import litellm

    with pytest.raises(litellm.exceptions.ServiceUnavailableError, match=r"busy"):
        make_model(server).generate([{"role": "user", "content": "hi"}])
    assert len(server.requests) == FAST_RETRY["attempts"]


def test_retry_after_is_honoured_then_success(server: LoopbackServer) -> None:
    server.faults.append(Fault(status=429, retry_after="0.05"))
    assert make_model(server).generate([{"role": "user", "content": "hi"}]).content
    assert len(server.requests) == 2


def test_reasoning_and_its_tokens_arrive_through_litellm(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="42", reasoning="six times seven", cached_tokens=2))
    message = make_model(server).generate([{"role": "user", "content": "6*7?"}])
    assert message.content == "42"
    assert message.reasoning_content == "six times seven"
    assert message.token_usage.reasoning_tokens == 3
    assert message.token_usage.cached_tokens == 2


def test_reasoning_effort_and_the_thinking_budget_reach_litellm() -> None:
    import litellm

    calls: list[dict[str, object]] = []
    model = LiteLLMModel(
        "anthropic/claude-sonnet-4-5",
        api_key="k",
        generation={"max_tokens": 50, "reasoning_tokens": 1024, "reasoning_effort": "low"},
    )
    model.client = type("Recorder", (), {"completion": lambda self, **kw: calls.append(kw)})()
    with pytest.raises(ValueError):  # the recorder returns nothing to read
        model.generate([{"role": "user", "content": "hi"}])
    (sent,) = calls
    assert sent["max_tokens"] == 50 and sent["reasoning_effort"] == "low"
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert litellm.__name__ == "litellm"


def test_validate_names_a_model_id_without_a_provider() -> None:
    """`gpt4` alone: litellm would refuse every call before reaching a server."""
    with dry_build():
        model = LiteLLMModel(model_id="gpt4", api_key="x")
        custom = LiteLLMModel(model_id="gpt4", api_key="x", custom_llm_provider="openai")
    (problem,) = model.environment_problems()
    assert problem[0] == "model_id" and "provider/model" in problem[1]
    assert custom.environment_problems() == []
