"""hydragent models drive smolagents' own agents: ToolCallingAgent and CodeAgent finish a task
that needs a tool call and a final answer, with ScriptedModel and with OpenAIServerModel
against a loopback OpenAI server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

smolagents = pytest.importorskip("smolagents", reason="smolagents is a test dependency")

from tests.servers import LoopbackServer, Reply, openai_app, running  # noqa: E402

from hydragent.models import OpenAIServerModel  # noqa: E402
from hydragent.models.scripted import ScriptedModel  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@smolagents.tool
def multiply(a: int, b: int) -> int:
    """Multiplies two integers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return a * b


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(openai_app) as loopback:
        yield loopback


def test_smolagents_tool_calling_agent_with_scripted_model() -> None:
    model = ScriptedModel(
        responses=[
            {"tool_calls": [{"name": "multiply", "arguments": {"a": 6, "b": 7}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "42"}}]},
        ]
    )
    agent = smolagents.ToolCallingAgent(tools=[multiply], model=model, max_steps=4)
    assert str(agent.run("What is 6 times 7?")) == "42"
    assert model.calls[0]["tools"] == ["multiply", "final_answer"]


def test_smolagents_code_agent_with_scripted_model() -> None:
    model = ScriptedModel(
        responses=[
            "Thought: multiply.\n<code>\nproduct = multiply(a=6, b=7)\nprint(product)\n</code>",
            "Thought: done.\n<code>\nfinal_answer(product)\n</code>",
        ]
    )
    agent = smolagents.CodeAgent(tools=[multiply], model=model, max_steps=4)
    assert agent.run("What is 6 times 7?") == 42


def test_smolagents_tool_calling_agent_with_openai_server_model(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "multiply", "arguments": {"a": 6, "b": 7}}])
    )
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "final_answer", "arguments": {"answer": "42"}}])
    )
    model = OpenAIServerModel("gpt-4o-mini", api_base=f"{server.url}/v1", api_key="sk-test")
    agent = smolagents.ToolCallingAgent(tools=[multiply], model=model, max_steps=4)
    assert str(agent.run("What is 6 times 7?")) == "42"
    second = server.requests[-1].json["messages"]
    assert any("42" in str(m["content"]) for m in second[2:])  # the observation went back


def test_smolagents_code_agent_with_openai_server_model(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content="Thought: go.\n<code>\nproduct = multiply(a=6, b=7)\n</code>")
    )
    server.replies.append(Reply(content="<code>\nfinal_answer(product)\n</code>"))
    model = OpenAIServerModel("gpt-4o-mini", api_base=f"{server.url}/v1", api_key="sk-test")
    agent = smolagents.CodeAgent(tools=[multiply], model=model, max_steps=4)
    assert agent.run("What is 6 times 7?") == 42


def test_smolagents_streaming_agents_read_our_stream_deltas(server: LoopbackServer) -> None:
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "multiply", "arguments": {"a": 6, "b": 7}}])
    )
    server.replies.append(
        Reply(content=None, tool_calls=[{"name": "final_answer", "arguments": {"answer": "42"}}])
    )
    model = OpenAIServerModel("gpt-4o-mini", api_base=f"{server.url}/v1", api_key="sk-test")
    agent = smolagents.ToolCallingAgent(
        tools=[multiply], model=model, max_steps=4, stream_outputs=True, verbosity_level=0
    )
    assert str(agent.run("What is 6 times 7?")) == "42"

    scripted = ScriptedModel(
        responses=[
            "<code>\nproduct = multiply(a=6, b=7)\n</code>",
            "<code>final_answer(product)</code>",
        ]
    )
    code_agent = smolagents.CodeAgent(
        tools=[multiply], model=scripted, max_steps=4, stream_outputs=True, verbosity_level=0
    )
    assert code_agent.run("What is 6 times 7?") == 42
