"""OllamaModel against a loopback server speaking Ollama's native chat API.

The backend was added as one module and its conf/model YAML (docs/architecture.md, "Adding a
backend"); these tests are what a user of it relies on, end to end through `hydragent run`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import Fault, LoopbackServer, Reply, ollama_app, running

from hydragent.agents.tool_calling import ToolCallingAgent
from hydragent.messages import agglomerate_stream_deltas
from hydragent.models import backend_class
from hydragent.models.errors import IncompleteStreamError

pytestmark = pytest.mark.timeout(60)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
FAST_RETRY = {"attempts": 3, "initial_wait": 0.01, "jitter": 0.0}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(ollama_app) as loopback:
        yield loopback


def model_for(server: LoopbackServer, **kwargs: object):
    return backend_class("ollama")("m", api_base=server.url, retry=FAST_RETRY, **kwargs)


def test_a_reply_with_its_usage_and_the_generation_node_in_options(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="Paris is the capital. STOP here"))
    model = model_for(
        server,
        options={"num_ctx": 4096},
        generation={"max_tokens": 32, "temperature": 0.2, "top_k": 5, "seed": 7},
    )
    reply = model.generate(QUESTION, stop_sequences=["STOP"])
    body = server.requests[0].json
    assert body["model"] == "m" and body["stream"] is False
    assert body["options"] == {
        "num_ctx": 4096,
        "stop": ["STOP"],
        "num_predict": 32,
        "temperature": 0.2,
        "top_k": 5,
        "seed": 7,
    }
    assert reply.content == "Paris is the capital. "
    assert reply.token_usage.input_tokens > 0 and reply.token_usage.output_tokens > 0


def test_a_model_option_given_by_the_user_beats_the_generation_node(server: LoopbackServer) -> None:
    model = model_for(server, num_predict=8, generation={"max_tokens": 32})
    model.generate(QUESTION)
    assert server.requests[0].json["options"]["num_predict"] == 8


def test_thinking_comes_back_apart_from_the_answer(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="Paris.", reasoning="France's capital is Paris."))
    reply = model_for(server, generation={"reasoning_effort": "high"}).generate(QUESTION)
    assert server.requests[0].json["think"] == "high"
    assert (reply.content, reply.reasoning_content) == ("Paris.", "France's capital is Paris.")


def test_a_json_schema_grammar_is_ollamas_format(server: LoopbackServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    server.replies.append(Reply(content='{"city": "Paris"}'))
    reply = model_for(server).generate(QUESTION, grammar={"type": "json_schema", "schema": schema})
    assert server.requests[0].json["format"] == schema
    assert json.loads(reply.content) == {"city": "Paris"}


def test_tool_calls_round_trip_through_a_tool_calling_agent(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content="", tool_calls=[{"name": "final_answer", "arguments": {"answer": "Paris"}}])
    )
    result = ToolCallingAgent(max_steps=2).run("Capital of France?", model_for(server))
    assert (result.status, result.answer) == ("ok", "Paris")
    sent = server.requests[0].json
    assert "final_answer" in {t["function"]["name"] for t in sent["tools"]}


def test_a_tool_result_goes_back_as_a_tool_turn(server: LoopbackServer) -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": {"a": 1}}}]
    model_for(server).generate(
        [
            {"role": "user", "content": "add"},
            {"role": "assistant", "content": "", "tool_calls": calls},
            {"role": "tool-response", "content": "2", "tool_call_id": "c1", "name": "add"},
        ]
    )
    messages = server.requests[0].json["messages"]
    assert messages[1]["tool_calls"] == [{"function": {"name": "add", "arguments": {"a": 1}}}]
    assert messages[2] == {"role": "tool", "content": "2", "tool_name": "add"}


def test_streaming_yields_text_then_usage_and_a_cut_stream_is_an_error(
    server: LoopbackServer,
) -> None:
    server.replies.append(Reply(content="Paris is lovely"))
    deltas = list(model_for(server).generate_stream(QUESTION))
    merged = agglomerate_stream_deltas(deltas)
    assert merged.content.strip() == "Paris is lovely" and merged.token_usage.output_tokens == 3
    server.faults.append(Fault(kind="truncate"))
    with pytest.raises(IncompleteStreamError):
        list(model_for(server).generate_stream(QUESTION))


def test_a_5xx_is_retried_and_an_unknown_model_is_not(server: LoopbackServer) -> None:
    server.faults.append(Fault(status=503))
    assert model_for(server).generate(QUESTION).content
    assert len(server.requests) == 2
    server.requests.clear()
    with pytest.raises(RuntimeError, match="404: model 'nope' not found"):
        backend_class("ollama")("nope", api_base=server.url, retry=FAST_RETRY).generate(QUESTION)
    assert len(server.requests) == 1


def test_no_server_is_a_connection_error_with_its_fix() -> None:
    from hydragent.runner.errors import known_fix

    model = backend_class("ollama")("m", api_base="http://127.0.0.1:9", retry=False)
    with pytest.raises(ConnectionError, match="no Ollama server answered") as caught:
        model.generate(QUESTION)
    assert "ollama serve" in (known_fix("ConnectionError", str(caught.value)) or "")


def test_hydragent_run_model_ollama_end_to_end(server: LoopbackServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).with_name("hydragent")
    run = subprocess.run(
        [
            str(script),
            "run",
            "model=ollama",
            "model.model_id=m",
            f"model.api_base={server.url}",
            "task=smoke",
            "scorer=includes",
            f"hydra.run.dir={tmp_path / 'run'}",
            "runner.max_error_rate=1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").open()]
    assert records and all(r["status"] == "ok" for r in records)
    assert all(req.path == "/api/chat" for req in server.requests)
