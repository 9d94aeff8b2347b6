"""smolagents' documented model API (its reference page and guided tour), used as its docs show
it, with hydragent's classes against a loopback OpenAI-compatible server: constructor keywords,
`model(messages)`, `generate_stream`, a custom `Model` driving smolagents' CodeAgent, and an
`ApiModel` subclass in the shape of smolagents' own backends driving its ToolCallingAgent."""

from __future__ import annotations

import pytest
from smolagents.tools import tool

from hydragent.models import ChatMessage, Model, OpenAIModel


@pytest.fixture
def openai_server():
    from tests.servers import openai_app, running

    with running(openai_app) as loopback:
        yield loopback


@tool
def multiply(a: int, b: int) -> int:
    """Multiplies two integers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return a * b


def test_documented_openai_model_forwards_constructor_kwargs(openai_server):
    """`model(messages)` with the documented kwargs at instantiation: they reach every call."""
    model = OpenAIModel(
        model_id="gpt-4o",
        api_base=f"{openai_server.url}/v1",
        api_key="sk-test",
        temperature=0.7,
        max_tokens=1000,
        top_p=0.9,
    )
    reply = model([{"role": "user", "content": "Ok!"}], stop_sequences=["great"])
    assert reply.content == "Hello from the loopback server."
    body = openai_server.requests[-1].json
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.7, 1000, 0.9)
    assert body["stop"] == ["great"]


def test_documented_generate_stream_agglomerates(openai_server):
    from hydragent.models import agglomerate_stream_deltas

    model = OpenAIModel(model_id="gpt-4o", api_base=f"{openai_server.url}/v1", api_key="sk-test")
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hello, how are you?"}]}]
    deltas = list(model.generate_stream(messages))
    message = agglomerate_stream_deltas(deltas)
    assert message.content == "Hello from the loopback server."
    assert message.token_usage.output_tokens > 0


def test_documented_custom_model_overriding_generate_drives_code_agent(openai_server):
    """The reference's "Custom Model": a subclass whose generate calls a client itself."""
    from smolagents import CodeAgent
    from tests.servers import Reply

    openai_server.replies.append(Reply(content="<code>\nfinal_answer(multiply(a=6, b=7))\n</code>"))
    client = OpenAIModel(model_id="gpt-4o", api_base=f"{openai_server.url}/v1", api_key="sk-test")

    class CustomModel(Model):
        def generate(self, messages, stop_sequences=["Task"], **kwargs):  # noqa: B006 (as documented)
            return client.generate(messages, stop_sequences=stop_sequences)

    agent = CodeAgent(tools=[multiply], model=CustomModel(), max_steps=2)
    assert agent.run("What is 6 times 7?") == 42


def test_api_model_subclass_written_like_smolagents_backends(openai_server):
    """A user's ApiModel subclass in the shape of smolagents' own backends: create_client,
    _prepare_completion_kwargs, _apply_rate_limit, retryer, ChatMessage.from_dict."""
    import openai
    from smolagents import ToolCallingAgent
    from tests.servers import Reply

    from hydragent.models import ApiModel, TokenUsage

    class MyServerModel(ApiModel):
        def __init__(self, model_id, api_base, **kwargs):
            self.api_base = api_base
            super().__init__(model_id=model_id, **kwargs)

        def create_client(self):
            return openai.OpenAI(base_url=self.api_base, api_key="sk-mine")

        def generate(
            self,
            messages,
            stop_sequences=None,
            response_format=None,
            tools_to_call_from=None,
            **kwargs,
        ):
            completion_kwargs = self._prepare_completion_kwargs(
                messages=messages,
                stop_sequences=stop_sequences,
                tools_to_call_from=tools_to_call_from,
                model=self.model_id,
                **kwargs,
            )
            self._apply_rate_limit()
            response = self.retryer(self.client.chat.completions.create, **completion_kwargs)
            return ChatMessage.from_dict(
                response.choices[0].message.model_dump(include={"role", "content", "tool_calls"}),
                raw=response,
                token_usage=TokenUsage(
                    input_tokens=response.usage.prompt_tokens,
                    output_tokens=response.usage.completion_tokens,
                ),
            )

    openai_server.replies.append(
        Reply(content=None, tool_calls=[{"name": "multiply", "arguments": {"a": 6, "b": 7}}])
    )
    openai_server.replies.append(
        Reply(content=None, tool_calls=[{"name": "final_answer", "arguments": {"answer": "42"}}])
    )
    model = MyServerModel(
        "gpt-4o-mini", api_base=f"{openai_server.url}/v1", requests_per_minute=6000
    )
    agent = ToolCallingAgent(tools=[multiply], model=model, max_steps=3)
    assert str(agent.run("What is 6 times 7?")) == "42"
    first = openai_server.requests[0]
    assert first.headers["Authorization"] == "Bearer sk-mine"
    assert first.json["tool_choice"] == "required"
    assert [t["function"]["name"] for t in first.json["tools"]] == ["multiply", "final_answer"]


def test_model_takes_smolagents_positional_order():
    """smolagents' Model(flatten_messages_as_text, tool_name_key, tool_arguments_key, model_id)."""
    model = Model(True, "tool", "params", "my-model")
    assert model.flatten_messages_as_text is True
    assert (model.tool_name_key, model.tool_arguments_key, model.model_id) == (
        "tool",
        "params",
        "my-model",
    )


def test_agent_save_and_from_folder_rebuild_the_same_model(openai_server, tmp_path):
    from smolagents import CodeAgent

    model = OpenAIModel(
        model_id="gpt-4o", api_base=f"{openai_server.url}/v1", api_key="sk-test", temperature=0.2
    )
    CodeAgent(tools=[multiply], model=model, max_steps=2).save(tmp_path / "agent")
    rebuilt = CodeAgent.from_folder(tmp_path / "agent")
    assert type(rebuilt.model) is OpenAIModel
    assert (rebuilt.model.model_id, rebuilt.model.api_base) == ("gpt-4o", f"{openai_server.url}/v1")
    assert rebuilt.model.kwargs == {"temperature": 0.2}


def test_streaming_agent_runs_on_a_subclass_that_only_overrides_generate():
    """Deliberate difference: smolagents refuses `stream_outputs=True` with a model lacking
    generate_stream; every hydragent model has one, streaming a generate-only reply whole."""
    from smolagents import CodeAgent

    from hydragent.messages import TokenUsage

    class GenerateOnly(Model):
        def generate(self, messages, stop_sequences=None, **kwargs):
            return ChatMessage(
                role="assistant",
                content="<code>\nfinal_answer(multiply(a=6, b=7))\n</code>",
                token_usage=TokenUsage(input_tokens=3, output_tokens=4),
            )

    agent = CodeAgent(tools=[multiply], model=GenerateOnly(), max_steps=2, stream_outputs=True)
    assert agent.run("What is 6 times 7?") == 42
    assert agent.monitor.get_total_token_counts().output_tokens == 4
