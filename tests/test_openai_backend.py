"""OpenAIServerModel (and the vLLM-server preset) against a loopback OpenAI server, with the
real `openai` client: what goes over the wire, what comes back, and how failures end."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest
from tests.servers import Fault, LoopbackServer, Reply, openai_app, running

from hydragent.messages import MessageRole, agglomerate_stream_deltas
from hydragent.models import OpenAIModel, OpenAIServerModel, dry_build
from hydragent.models.errors import IncompleteStreamError, MalformedResponseError
from hydragent.models.vllm_server import VLLMServerModel

pytestmark = pytest.mark.timeout(60)

FAST_RETRY = {"attempts": 3, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.0}
CALCULATOR = {
    "name": "calculator",
    "description": "Evaluates an arithmetic expression.",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(openai_app) as loopback:
        yield loopback


def make_model(server: LoopbackServer, **kwargs: object) -> OpenAIServerModel:
    options: dict[str, object] = {"api_base": f"{server.url}/v1", "api_key": "sk-test"}
    options.update({"retry": FAST_RETRY, **kwargs})
    return OpenAIServerModel("gpt-4o-mini", **options)  # type: ignore[arg-type]


def test_a_plain_question_gets_text_and_usage(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="Paris is the capital."))
    model = make_model(server)

    message = model.generate(
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Capital of France?"},
        ]
    )

    assert message.role == MessageRole.ASSISTANT
    assert message.content == "Paris is the capital."
    assert message.token_usage.output_tokens == 4
    received = server.requests[0]
    assert received.path == "/v1/chat/completions"
    assert received.headers["Authorization"] == "Bearer sk-test"
    assert received.json["model"] == "gpt-4o-mini"
    assert [m["role"] for m in received.json["messages"]] == ["system", "user"]


def test_stop_sequences_are_sent_and_honoured(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="Thought: add them\nObservation: 4"))
    message = make_model(server).generate(
        [{"role": "user", "content": "2+2?"}], stop_sequences=["Observation:"]
    )
    assert server.requests[0].json["stop"] == ["Observation:"]
    assert message.content == "Thought: add them\n"


def test_reasoning_models_get_no_stop_but_the_text_is_still_cut(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="step one END step two"))
    model = OpenAIServerModel("o3", api_base=f"{server.url}/v1", api_key="k", retry=FAST_RETRY)
    message = model.generate([{"role": "user", "content": "go"}], stop_sequences=["END"])
    assert "stop" not in server.requests[0].json
    assert message.content == "step one "


def test_a_reasoning_model_stream_is_cut_at_a_stop_split_over_chunks(
    server: LoopbackServer,
) -> None:
    server.replies.append(Reply(content="step one END step two"))
    model = OpenAIServerModel("o3", api_base=f"{server.url}/v1", api_key="k", retry=FAST_RETRY)
    deltas = list(
        model.generate_stream([{"role": "user", "content": "go"}], stop_sequences=["one END"])
    )
    assert "stop" not in server.requests[0].json
    assert len([d for d in deltas if d.content]) >= 1  # the server sent the words one by one
    message = agglomerate_stream_deltas(deltas)
    assert message.content == "step "
    assert message.token_usage.output_tokens > 0  # the stream was read to its end for usage


def test_tools_are_offered_and_tool_calls_parsed(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}])
    )
    message = make_model(server).generate(
        [{"role": "user", "content": "What is 6*7?"}], tools_to_call_from=[CALCULATOR]
    )
    sent = server.requests[0].json
    assert sent["tools"] == [{"type": "function", "function": CALCULATOR}]
    assert sent["tool_choice"] == "required"
    assert message.content is None
    (call,) = message.tool_calls or []
    assert call.function.name == "calculator"
    assert json.loads(call.function.arguments) == {"expression": "6*7"}


def test_a_call_may_choose_its_own_tool_choice(server: LoopbackServer) -> None:
    make_model(server).generate(
        [{"role": "user", "content": "hi"}], tools_to_call_from=[CALCULATOR], tool_choice="auto"
    )
    assert server.requests[0].json["tool_choice"] == "auto"


def test_tool_history_is_sent_paired_by_id(server: LoopbackServer) -> None:
    history = [
        {"role": "user", "content": "6*7?"},
        {
            "role": "tool-call",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "function": {"name": "calculator", "arguments": {"x": 1}}}
            ],
        },
        {"role": "tool-response", "content": "42", "tool_call_id": "call_1"},
    ]
    make_model(server).generate(history)
    sent = server.requests[0].json["messages"]
    assert sent[1]["role"] == "assistant"
    assert sent[1]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": '{"x": 1}'}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}


def test_grammar_json_schema_becomes_response_format(server: LoopbackServer) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    server.replies.append(Reply(content='{"answer": "Paris"}'))
    message = make_model(server).generate(
        [{"role": "user", "content": "Capital?"}],
        grammar={"type": "json_schema", "schema": schema},
    )
    assert server.requests[0].json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert json.loads(message.content or "") == {"answer": "Paris"}


def test_a_grammar_openai_cannot_enforce_fails_before_any_request(server: LoopbackServer) -> None:
    with pytest.raises(ValueError, match=r"grammar=regex cannot be enforced.*vllm_server"):
        make_model(server).generate(
            [{"role": "user", "content": "n?"}], grammar={"type": "regex", "pattern": "[0-9]+"}
        )
    assert server.requests == []


def test_usage_null_gives_zero_usage_not_a_crash(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="ok", usage=None))
    message = make_model(server).generate([{"role": "user", "content": "hi"}])
    assert message.content == "ok"
    assert message.token_usage.total_tokens == 0


def test_streaming_yields_text_tool_calls_and_usage(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content="Let me compute", tool_calls=[{"name": "calculator", "arguments": {"e": 1}}])
    )
    deltas = list(
        make_model(server).generate_stream(
            [{"role": "user", "content": "hi"}], tools_to_call_from=[CALCULATOR]
        )
    )
    message = agglomerate_stream_deltas(deltas)
    assert server.requests[0].json["stream_options"] == {"include_usage": True}
    assert message.content == "Let me compute"
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "calculator"
    assert json.loads(message.tool_calls[0].function.arguments) == {"e": 1}
    assert message.token_usage.output_tokens == 4


def test_instance_kwargs_reach_every_request(server: LoopbackServer) -> None:
    make_model(server, temperature=0.0, max_tokens=7).generate(
        [{"role": "user", "content": "hi"}], temperature=0.9
    )
    sent = server.requests[0].json
    assert (sent["temperature"], sent["max_tokens"]) == (0.0, 7)


def test_the_alias_is_the_same_class() -> None:
    assert OpenAIModel is OpenAIServerModel


# --- failures ------------------------------------------------------------------------------


def test_429_is_retried_after_the_servers_retry_after(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.faults.append(Fault(status=429, body="slow down", retry_after="0.25"))
    with caplog.at_level(logging.WARNING, logger="hydragent.models"):
        message = make_model(server).generate([{"role": "user", "content": "hi"}])
    assert message.content
    assert len(server.requests) == 2
    assert "in 0.25s after HTTP 429" in caplog.text


def test_5xx_retries_are_bounded_and_the_final_error_is_the_clients_own(
    server: LoopbackServer,
) -> None:
    server.always_fail = Fault(status=503, body="upstream overloaded")
    with pytest.raises(openai.InternalServerError, match=r"503.*upstream overloaded") as failure:
        make_model(server).generate([{"role": "user", "content": "hi"}])
    assert failure.value.status_code == 503
    assert len(server.requests) == FAST_RETRY["attempts"]


def test_a_client_error_is_not_retried(server: LoopbackServer) -> None:
    server.faults.append(Fault(status=400, body="messages must not be empty"))
    with pytest.raises(openai.BadRequestError, match=r"400.*messages must not be empty"):
        make_model(server).generate([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 1


def test_transient_500_then_success(server: LoopbackServer) -> None:
    server.faults.extend([Fault(status=500), Fault(status=500)])
    assert make_model(server).generate([{"role": "user", "content": "hi"}]).content
    assert len(server.requests) == 3


def test_a_hung_server_times_out_instead_of_hanging(server: LoopbackServer) -> None:
    server.faults.extend([Fault(kind="hang", seconds=30)] * 2)
    model = make_model(server, client_kwargs={"timeout": 0.3})
    model.retry.attempts = 2
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        model.generate([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 2


def test_a_reset_connection_is_retried(server: LoopbackServer) -> None:
    server.faults.append(Fault(kind="reset"))
    assert make_model(server).generate([{"role": "user", "content": "hi"}]).content
    assert len(server.requests) == 2


def test_a_malformed_body_is_a_clear_error(server: LoopbackServer) -> None:
    server.faults.append(Fault(kind="malformed"))
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        make_model(server).generate([{"role": "user", "content": "hi"}])


def test_a_truncated_stream_is_an_error_not_a_short_answer(server: LoopbackServer) -> None:
    server.faults.append(Fault(kind="truncate"))
    server.replies.append(Reply(content="one two three four five"))
    with pytest.raises(IncompleteStreamError, match="truncated"):
        list(make_model(server).generate_stream([{"role": "user", "content": "hi"}]))


def test_the_openai_clients_own_retries_are_off(server: LoopbackServer) -> None:
    server.always_fail = Fault(status=500)
    model = make_model(server)
    model.retry.attempts = 1
    with pytest.raises(openai.InternalServerError):
        model.generate([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 1


def test_an_api_key_never_appears_in_the_models_dict(server: LoopbackServer) -> None:
    exported = make_model(server).to_dict()
    assert "sk-test" not in json.dumps(exported)
    assert exported["api_base"] == f"{server.url}/v1"


# --- vLLM server preset --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grammar", "expected"),
    [
        ({"type": "regex", "pattern": "[0-9]+"}, {"regex": "[0-9]+"}),
        ({"type": "choice", "choices": ["yes", "no"]}, {"choice": ["yes", "no"]}),
        ({"type": "json_schema", "schema": {"type": "object"}}, {"json": {"type": "object"}}),
        ({"type": "json_object"}, {"json_object": True}),
    ],
)
def test_vllm_server_sends_structured_outputs(
    server: LoopbackServer, grammar: dict[str, object], expected: dict[str, object]
) -> None:
    model = VLLMServerModel("Qwen/Qwen2.5-0.5B", api_base=f"{server.url}/v1", retry=FAST_RETRY)
    model.generate([{"role": "user", "content": "go"}], grammar=grammar)
    sent = server.requests[0].json
    assert sent["structured_outputs"] == expected
    assert "response_format" not in sent
    assert server.requests[0].headers["Authorization"] == "Bearer EMPTY"


def test_vllm_server_can_speak_the_pre_0_12_guided_fields(server: LoopbackServer) -> None:
    model = VLLMServerModel(
        "m", api_base=f"{server.url}/v1", legacy_guided_fields=True, retry=FAST_RETRY
    )
    model.generate(
        [{"role": "user", "content": "go"}], grammar={"type": "choice", "choices": ["a"]}
    )
    assert server.requests[0].json["guided_choice"] == ["a"]


# --- packaging -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "library", "extra"),
    [
        ("openai", "openai", "openai"),
        ("azure_openai", "openai", "openai"),
        ("vllm_server", "openai", "openai"),
        ("inference_client", "huggingface_hub", "hf"),
        ("litellm", "litellm", "litellm"),
        ("bedrock", "boto3", "bedrock"),
    ],
)
def test_a_missing_client_library_names_the_pip_extra(
    backend: str, library: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydragent.models import backend_class

    cls = backend_class(backend)
    monkeypatch.setitem(sys.modules, library, None)  # as if the library were not installed
    arguments = {"model_id": "m"}
    if backend == "azure_openai":
        arguments.update(azure_endpoint="http://127.0.0.1:9", api_version="2024-10-21")
    with pytest.raises(ImportError, match=rf"pip install 'hydragent\[{extra}\]'"):
        cls(**arguments)  # the client is built at construction, as in smolagents
    with dry_build():
        model = cls(**arguments)
    assert (
        "_target_",
        f"{cls.__name__} needs the '{extra}' extra: pip install 'hydragent[{extra}]'",
    ) in model.environment_problems()


def test_importing_the_backends_imports_no_client_library() -> None:
    code = (
        "import sys, hydragent.models.openai, hydragent.models.azure_openai, "
        "hydragent.models.vllm_server, hydragent.models.inference_client, "
        "hydragent.models.litellm, hydragent.models.litellm_router, hydragent.models.bedrock\n"
        "print(sorted(m for m in ('openai', 'litellm', 'boto3', 'huggingface_hub') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_arrives_apart_from_the_answer_with_its_tokens(
    server: LoopbackServer, field: str
) -> None:
    server.replies.append(
        Reply(content="42", reasoning="six times seven", reasoning_field=field, cached_tokens=3)
    )
    message = make_model(server).generate([{"role": "user", "content": "6*7?"}])
    assert message.content == "42"
    assert message.reasoning_content == "six times seven"
    assert message.token_usage.reasoning_tokens == 3
    assert message.token_usage.cached_tokens == 3


def test_streamed_reasoning_arrives_in_its_own_deltas(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="42", reasoning="six times seven"))
    deltas = list(make_model(server).generate_stream([{"role": "user", "content": "6*7?"}]))
    message = agglomerate_stream_deltas(deltas)
    assert message.content == "42"
    assert message.reasoning_content == "six times seven"
    assert message.token_usage.reasoning_tokens == 3


def test_the_generation_node_maps_to_chat_completion_names(server: LoopbackServer) -> None:
    generation = {"max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "top_k": 5, "seed": 7}
    model = make_model(server, generation={**generation, "stop": ["END"]})
    model.generate([{"role": "user", "content": "hi"}], temperature=0.5)
    sent = server.requests[0].json
    assert sent["max_tokens"] == 64
    assert sent["temperature"] == 0.5  # the call's own setting wins over the node
    assert sent["top_p"] == 0.9 and sent["seed"] == 7 and sent["stop"] == ["END"]
    assert "top_k" not in sent  # OpenAI has no top_k


def test_constructor_settings_win_over_the_generation_node(server: LoopbackServer) -> None:
    model = make_model(server, generation={"max_tokens": 64}, max_tokens=10)
    model.generate([{"role": "user", "content": "hi"}])
    assert server.requests[0].json["max_tokens"] == 10


@pytest.mark.parametrize("model_id", ["o3", "o4-mini", "gpt-5-mini", "openai/o1"])
def test_reasoning_models_get_max_completion_tokens_and_effort_but_no_sampling(
    server: LoopbackServer, model_id: str
) -> None:
    model = OpenAIServerModel(
        model_id,
        api_base=f"{server.url}/v1",
        api_key="sk-test",
        generation={"max_tokens": 99, "temperature": 0.3, "reasoning_effort": "low"},
    )
    model.generate([{"role": "user", "content": "hi"}], stop_sequences=["Observation:"])
    sent = server.requests[0].json
    assert sent["max_completion_tokens"] == 99 and sent["reasoning_effort"] == "low"
    assert "max_tokens" not in sent and "temperature" not in sent
    assert ("stop" in sent) is model.supports_stop_parameter


def test_tool_choice_is_required_with_tools_left_out_when_none_and_never_without_tools(
    server: LoopbackServer,
) -> None:
    model = make_model(server)
    hi = [{"role": "user", "content": "hi"}]
    model.generate(hi, tools_to_call_from=[CALCULATOR])
    model.generate(hi, tools_to_call_from=[CALCULATOR], tool_choice=None)
    model.generate(hi, tool_choice="required")
    first, second, third = (request.json for request in server.requests)
    assert first["tool_choice"] == "required"
    assert "tool_choice" not in second and "tools" in second
    assert "tool_choice" not in third and "tools" not in third


def test_no_key_fails_at_construction_but_validate_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(openai.OpenAIError, match="api_key"):
        OpenAIServerModel("gpt-4o-mini")
    with dry_build():
        model = OpenAIServerModel("gpt-4o-mini")
    assert model.environment_problems() == [
        (
            "api_key",
            "OpenAIServerModel needs a key: set OPENAI_API_KEY or model.api_key, or point "
            "model.api_base at a local server",
        )
    ]
    with dry_build():
        local = OpenAIServerModel("m", api_base="http://127.0.0.1:8000/v1")
    assert local.environment_problems() == []


def test_retry_false_turns_retries_off(server: LoopbackServer) -> None:
    server.always_fail = Fault(status=503)
    model = make_model(server, retry=False)
    with pytest.raises(openai.InternalServerError):
        model.generate([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 1


def test_an_image_goes_as_an_image_url_data_part(server: LoopbackServer) -> None:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "blue").save(buffer, format="PNG")
    make_model(server).generate(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Colour?"},
                    {"type": "image", "image": buffer.getvalue()},
                ],
            }
        ]
    )
    text, image = server.requests[0].json["messages"][0]["content"]
    assert text == {"type": "text", "text": "Colour?"}
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == buffer.getvalue()
