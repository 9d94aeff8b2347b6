"""AmazonBedrockServerModel against a loopback Converse server, signed by real boto3."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import Fault, LoopbackServer, Reply, bedrock_app, running

from hydragent.messages import agglomerate_stream_deltas
from hydragent.models import AmazonBedrockModel, AmazonBedrockServerModel, dry_build
from hydragent.models.errors import IncompleteStreamError, MalformedResponseError

pytestmark = pytest.mark.timeout(60)

MODEL_ID = "us.amazon.nova-lite-v1:0"
FAST_RETRY = {"attempts": 3, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.0}
KEEP_SYSTEM = {"system": "system", "tool-call": "assistant", "tool-response": "user"}
CALCULATOR = {
    "name": "calculator",
    "description": "Evaluates an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
}
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(bedrock_app) as loopback:
        yield loopback


def make_model(
    server: LoopbackServer, config: dict[str, float] | None = None, **kwargs: object
) -> AmazonBedrockServerModel:
    client_kwargs = {
        "endpoint_url": server.url,
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIDLOOPBACK",
        "aws_secret_access_key": "not-a-real-secret",
        **({"config": config} if config else {}),
    }
    return AmazonBedrockServerModel(
        MODEL_ID, client_kwargs=client_kwargs, retry=FAST_RETRY, **kwargs
    )


def test_the_request_is_sigv4_signed_and_routed_to_converse(server: LoopbackServer) -> None:
    message = make_model(server).generate(CONVERSATION)
    received = server.requests[0]
    assert received.path == f"/model/{MODEL_ID}/converse"
    assert re.match(
        r"AWS4-HMAC-SHA256 Credential=AKIDLOOPBACK/\d{8}/us-east-1/bedrock/aws4_request, "
        r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$",
        received.headers["Authorization"],
    )
    assert message.content == "Hello from the loopback server."
    assert message.tool_calls is None  # an ordinary reply: no KeyError 'tool_calls'
    assert message.token_usage.output_tokens == 5


def test_by_default_every_turn_becomes_one_user_turn(server: LoopbackServer) -> None:
    make_model(server).generate(CONVERSATION)
    sent = server.requests[0].json
    assert "system" not in sent
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [{"text": "Answer briefly.\nCapital of France?\nParis.\nAnd of Italy?"}],
        }
    ]


def test_roles_can_keep_system_turns_as_system_blocks(server: LoopbackServer) -> None:
    make_model(server, custom_role_conversions=KEEP_SYSTEM).generate(CONVERSATION)
    sent = server.requests[0].json
    assert sent["system"] == [{"text": "Answer briefly."}]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [{"text": "Paris."}]


def test_stop_sequences_and_sampling_go_into_inference_config(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="Rome. Observation: done"))
    message = make_model(server, temperature=0.0).generate(
        CONVERSATION, stop_sequences=["Observation:"], max_tokens=32
    )
    sent = server.requests[0].json
    assert sent["inferenceConfig"] == {
        "maxTokens": 32,
        "temperature": 0.0,
        "stopSequences": ["Observation:"],
    }
    assert message.content == "Rome. "


def test_tools_become_tool_config_and_tool_use_becomes_tool_calls(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "calculator", "arguments": {"expression": "2*3"}}])
    )
    message = make_model(server).generate(CONVERSATION, tools_to_call_from=[CALCULATOR])
    sent = server.requests[0].json
    assert "tools" not in sent and "tool_choice" not in sent
    assert sent["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "calculator",
                    "description": "Evaluates an arithmetic expression.",
                    "inputSchema": {"json": CALCULATOR["parameters"]},
                }
            }
        ],
        "toolChoice": {"any": {}},
    }
    (call,) = message.tool_calls or []
    assert (call.id, call.function.name) == ("tooluse_0", "calculator")
    assert call.function.arguments == {"expression": "2*3"}


def test_openai_style_tool_choice_is_translated(server: LoopbackServer) -> None:
    make_model(server).generate(CONVERSATION, tools_to_call_from=[CALCULATOR], tool_choice="auto")
    assert server.requests[0].json["toolConfig"]["toolChoice"] == {"auto": {}}


def test_json_schema_is_enforced_through_a_forced_tool(server: LoopbackServer) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "answer", "arguments": {"answer": "Rome"}}])
    )
    message = make_model(server).generate(
        CONVERSATION, grammar={"type": "json_schema", "schema": schema}
    )
    tool_config = server.requests[0].json["toolConfig"]
    assert tool_config["toolChoice"] == {"tool": {"name": "answer"}}
    assert tool_config["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}
    assert json.loads(message.content or "") == {"answer": "Rome"}
    assert message.tool_calls is None


def test_a_grammar_bedrock_cannot_enforce_is_refused(server: LoopbackServer) -> None:
    with pytest.raises(ValueError, match="grammar=choice cannot be enforced"):
        make_model(server).generate(CONVERSATION, grammar={"type": "choice", "choices": ["a"]})
    assert server.requests == []


def test_throttling_is_retried_after_retry_after(server: LoopbackServer) -> None:
    server.faults.append(Fault(status=429, body="Too many requests", retry_after="0.05"))
    assert make_model(server).generate(CONVERSATION).content
    assert len(server.requests) == 2


def test_retries_are_bounded_and_the_final_error_names_status_and_text(
    server: LoopbackServer,
) -> None:
    server.always_fail = Fault(status=503, body="Bedrock is busy")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match=r"Bedrock is busy"):
        make_model(server).generate(CONVERSATION)
    assert len(server.requests) == FAST_RETRY["attempts"]  # boto3's own retries are off


def test_a_reset_connection_is_retried(server: LoopbackServer) -> None:
    server.faults.append(Fault(kind="reset"))
    assert make_model(server).generate(CONVERSATION).content
    assert len(server.requests) == 2


def test_a_hung_server_times_out(server: LoopbackServer) -> None:
    server.faults.extend([Fault(kind="hang", seconds=30)] * 3)
    model = make_model(server, config={"read_timeout": 0.3, "connect_timeout": 0.3})
    model.retry.attempts = 2
    with pytest.raises(Exception, match=r"(?i)timeout"):
        model.generate(CONVERSATION)
    assert len(server.requests) == 2


def test_a_malformed_body_is_a_clear_error(server: LoopbackServer) -> None:
    server.faults.append(Fault(kind="malformed"))
    with pytest.raises(MalformedResponseError, match="no output message"):
        make_model(server).generate(CONVERSATION)


def test_the_class_default_and_the_config_agree_on_roles() -> None:
    from omegaconf import OmegaConf

    conf = OmegaConf.load(Path(__file__).parents[1] / "conf" / "model" / "bedrock.yaml")
    assert dict(conf.custom_role_conversions) == AmazonBedrockServerModel.default_role_conversions
    assert AmazonBedrockModel is AmazonBedrockServerModel


# --- ConverseStream: AWS event-stream framing, decoded by botocore ---------------------------


def test_streaming_yields_text_tool_use_and_usage(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content="Let me compute", tool_calls=[{"name": "calculator", "arguments": {"e": 1}}])
    )
    deltas = list(make_model(server).generate_stream(CONVERSATION, tools_to_call_from=[CALCULATOR]))
    message = agglomerate_stream_deltas(deltas)
    assert server.requests[0].path == f"/model/{MODEL_ID}/converse-stream"
    assert message.content == "Let me compute"
    (call,) = message.tool_calls or []
    assert (call.id, call.function.name) == ("tooluse_0", "calculator")
    assert json.loads(call.function.arguments) == {"e": 1}
    assert message.token_usage.output_tokens == 4  # three words and one tool call


def test_streaming_under_a_grammar_streams_the_json_answer(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "answer", "arguments": {"a": 1}}])
    )
    deltas = make_model(server).generate_stream(CONVERSATION, grammar={"type": "json_object"})
    message = agglomerate_stream_deltas(deltas)
    assert json.loads(message.content or "") == {"a": 1}
    assert message.tool_calls is None


def test_a_truncated_stream_is_an_error(server: LoopbackServer) -> None:
    server.faults.append(Fault(kind="truncate"))
    with pytest.raises(IncompleteStreamError, match="before messageStop"):
        list(make_model(server).generate_stream(CONVERSATION))


def test_opening_a_stream_is_retried_on_throttling(server: LoopbackServer) -> None:
    server.faults.append(Fault(status=429, retry_after="0.05"))
    text = "".join(d.content or "" for d in make_model(server).generate_stream(CONVERSATION))
    assert text == "Hello from the loopback server."
    assert len(server.requests) == 2


def test_reasoning_blocks_and_cached_tokens_arrive(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="42", reasoning="six times seven", cached_tokens=4))
    message = make_model(server).generate(CONVERSATION)
    assert message.content == "42"
    assert message.reasoning_content == "six times seven"
    assert message.token_usage.cached_tokens == 4


def test_streamed_reasoning_arrives_in_its_own_deltas(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="42", reasoning="six times seven"))
    message = agglomerate_stream_deltas(make_model(server).generate_stream(CONVERSATION))
    assert message.content == "42"
    assert message.reasoning_content == "six times seven "


def test_the_generation_node_maps_to_inference_config_and_a_thinking_budget(
    server: LoopbackServer,
) -> None:
    generation = {"max_tokens": 300, "temperature": 0.1, "top_p": 0.8, "reasoning_tokens": 1024}
    make_model(server, generation=generation).generate(CONVERSATION, temperature=0.6)
    sent = server.requests[0].json
    assert sent["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.6, "topP": 0.8}
    assert sent["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 1024}
    }


def test_validate_names_missing_region_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with dry_build():
        model = AmazonBedrockServerModel(MODEL_ID)
        local = AmazonBedrockServerModel(
            MODEL_ID, client_kwargs={"endpoint_url": "http://127.0.0.1:9", "region_name": "x"}
        )
    keys = [key for key, _ in model.environment_problems()]
    assert keys == ["client_kwargs.region_name", "client_kwargs"]
    # boto3 signs a local endpoint's requests too: without keys every call failed
    assert [key for key, _ in local.environment_problems()] == ["client_kwargs"]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"regin_name": "us-east-1"}, "unexpected keyword argument 'regin_name'"),
        ({"endpoint_url": "notaurl"}, "Invalid endpoint: notaurl"),
        ({"config": {"retries": {"mode": "bogus"}}}, '"mode": "bogus"'),
    ],
)
def test_validate_builds_the_boto3_client_offline_to_check_its_options(
    options: dict[str, object], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3 checks its options when it builds a client, which needs no network: each of
    these failed the run after validate said OK."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with dry_build():
        model = AmazonBedrockServerModel(MODEL_ID, client_kwargs=options)
    ((key, message),) = model.environment_problems()
    assert key == "client_kwargs" and "boto3 refuses these options" in message and says in message


def test_an_image_goes_as_an_image_block_with_its_format(server: LoopbackServer) -> None:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, format="JPEG")
    message = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Colour?"},
                {"type": "image", "image": buffer.getvalue()},
            ],
        }
    ]
    make_model(server).generate(message)
    (block,) = [b for b in server.requests[0].json["messages"][0]["content"] if "image" in b]
    assert block["image"]["format"] == "jpeg"
    assert base64.b64decode(block["image"]["source"]["bytes"]) == buffer.getvalue()
