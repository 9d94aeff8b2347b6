"""hydragent models drive smolagents' own agents: ToolCallingAgent and CodeAgent finish a task
that needs a tool call and a final answer, with ScriptedModel and with OpenAIServerModel
against a loopback OpenAI server."""

from __future__ import annotations

import json
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


# The behaviours smolagents' model tests check, written here against hydragent's classes.


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("o3", False),
        ("o4-mini-2025-04-16", False),
        ("openai/gpt-5.2-2025-01-01", False),
        ("grok-code-fast-1", False),
        ("oci/xai.grok-4", False),
        ("oci/xai.grok-3-mini", False),
        ("o3-mini", True),
        ("anthropic/claude-opus-4-5", True),
        ("", True),
        ("o3x", True),
        ("o4x", True),
        ("gpt-5x", False),
        ("o3_mini", True),
        ("prefix-o3", True),
    ],
)
def test_supports_stop_parameter_matches_smolagents(model_id: str, expected: bool) -> None:
    from hydragent.models import Model

    model = Model(model_id=model_id)
    assert model.supports_stop_parameter is expected
    assert model.capabilities.stop is expected
    assert smolagents.models.supports_stop_parameter(model_id) is expected


def test_prepare_completion_kwargs_precedence_and_remove_parameter() -> None:
    from hydragent.models import REMOVE_PARAMETER, Model

    hello = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    kwargs = Model(max_tokens=100, temperature=0.5)._prepare_completion_kwargs(
        messages=hello, max_tokens=50, top_p=0.9
    )
    assert (kwargs["max_tokens"], kwargs["temperature"], kwargs["top_p"]) == (100, 0.5, 0.9)
    removed = Model(max_tokens=REMOVE_PARAMETER)._prepare_completion_kwargs(
        messages=hello, max_tokens=200, stop_sequences=["x"]
    )
    assert "max_tokens" not in removed and removed["stop"] == ["x"]


@pytest.mark.parametrize(
    ("with_tools", "tool_choice", "expected"),
    [(True, ..., "required"), (True, "auto", "auto"), (True, None, ...), (False, "required", ...)],
)
def test_prepare_completion_kwargs_tool_choice(
    with_tools: bool, tool_choice: object, expected: object
) -> None:
    from hydragent.models import Model

    kwargs: dict[str, object] = {"messages": [{"role": "user", "content": "Hello"}]}
    if with_tools:
        kwargs["tools_to_call_from"] = [multiply]
    if tool_choice is not ...:
        kwargs["tool_choice"] = tool_choice
    completion = Model()._prepare_completion_kwargs(**kwargs)  # type: ignore[arg-type]
    assert completion.get("tool_choice", ...) == expected


def test_nullable_and_any_of_arguments_are_flattened() -> None:
    from hydragent.models.base import get_tool_json_schema

    @smolagents.tool
    def get_weather(location: str, celsius: bool | None = False) -> str:
        """Gets the weather.

        Args:
            location: the location
            celsius: the temperature type
        """
        return "rain"

    properties = get_tool_json_schema(get_weather)["function"]["parameters"]["properties"]
    assert properties["celsius"]["nullable"] is True
    assert "anyOf" not in properties["celsius"]


def test_clients_are_built_at_construction_with_smolagents_arguments() -> None:
    from unittest.mock import patch

    from hydragent.models import AmazonBedrockModel, AzureOpenAIModel, OpenAIModel

    with patch("openai.OpenAI") as client:
        model = OpenAIModel(
            model_id="gpt-3.5-turbo",
            api_base="https://api.openai.com/v1",
            api_key="k",
            organization="org",
            project="proj",
            client_kwargs={"max_retries": 5},
        )
    client.assert_called_once_with(
        base_url="https://api.openai.com/v1",
        api_key="k",
        organization="org",
        project="proj",
        max_retries=5,
    )
    assert model.client == client.return_value
    with patch("openai.OpenAI") as plain, patch("openai.AzureOpenAI") as azure:
        AzureOpenAIModel(
            model_id="gpt-3.5-turbo",
            api_key="k",
            api_version="2023-12-01-preview",
            azure_endpoint="https://example-resource.azure.openai.com/",
            organization="org",
            project="proj",
            client_kwargs={"max_retries": 5},
        )
    assert plain.call_count == 0
    azure.assert_called_once_with(
        base_url=None,
        api_key="k",
        api_version="2023-12-01-preview",
        azure_endpoint="https://example-resource.azure.openai.com/",
        organization="org",
        project="proj",
        max_retries=5,
    )
    with patch("boto3.client") as boto:
        assert AmazonBedrockModel(model_id="us.amazon.nova-pro-v1:0").client == boto.return_value


def test_router_client_is_built_with_the_model_list_even_for_another_group() -> None:
    from unittest.mock import patch

    from hydragent.models import LiteLLMRouterModel

    model_list = [{"model_name": "llama-3.3-70b", "litellm_params": {"model": "groq/llama"}}]
    with patch("litellm.router.Router") as router:
        model = LiteLLMRouterModel(
            model_id="model-group-1",
            model_list=model_list,
            client_kwargs={"routing_strategy": "simple-shuffle"},
        )
    assert router.call_args.kwargs["model_list"] == model_list
    assert router.call_args.kwargs["routing_strategy"] == "simple-shuffle"
    assert model.client == router.return_value


def test_an_assigned_client_mock_is_used_and_roles_converted() -> None:
    from unittest.mock import MagicMock

    from hydragent.models import InferenceClientModel

    model = InferenceClientModel(model_id="test-model", custom_role_conversions={"user": "system"})
    model.client = MagicMock()
    model.client.chat_completion.return_value.choices[0].message = {"role": "assistant"}
    model([{"role": "user", "content": "Test message"}])
    assert model.client.chat_completion.call_args.kwargs["messages"][0]["role"] == "system"


def test_stop_sequences_are_cut_for_o4_mini_with_a_mocked_client() -> None:
    from unittest.mock import MagicMock, patch

    from hydragent.models import OpenAIModel

    response = MagicMock()
    response.choices[0].message.content = "This is some text<STOP>and this should be removed"
    response.choices[0].message.tool_calls = None
    response.usage.prompt_tokens, response.usage.completion_tokens = 10, 20
    with patch("openai.OpenAI") as client:
        client.return_value.chat.completions.create.return_value = response
        model = OpenAIModel(model_id="o4-mini", api_key="k")
        result = model.generate([{"role": "user", "content": "Hello"}], stop_sequences=["<STOP>"])
    assert result.content == "This is some text"
    assert "stop" not in client.return_value.chat.completions.create.call_args.kwargs
    assert result.token_usage.input_tokens == 10 and result.token_usage.reasoning_tokens == 0


def test_a_smolagents_style_subclass_works_unchanged(server: LoopbackServer) -> None:
    """A user's subclass written for smolagents: overrides create_client, builds its request
    with _prepare_completion_kwargs and calls the client itself."""
    import openai

    from hydragent.models import ChatMessage, OpenAIServerModel

    class MyModel(OpenAIServerModel):
        def create_client(self) -> openai.OpenAI:
            return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-mine")

        def generate(self, messages, stop_sequences=None, **kwargs):  # type: ignore[no-untyped-def]
            completion = self._prepare_completion_kwargs(
                messages, stop_sequences=stop_sequences, model=self.model_id, **kwargs
            )
            reply = self.client.chat.completions.create(**completion)
            return ChatMessage(role="assistant", content=reply.choices[0].message.content)

    model = MyModel("gpt-4o-mini")
    answer = model([{"role": "user", "content": "hi"}], stop_sequences=["END"])
    assert answer.content == "Hello from the loopback server."
    assert server.requests[0].headers["Authorization"] == "Bearer sk-mine"
    assert server.requests[0].json["stop"] == ["END"]
    agent = smolagents.CodeAgent(tools=[], model=model, max_steps=1)
    assert agent.model is model


def test_agent_to_dict_and_from_dict_round_trip_finds_our_classes() -> None:
    model = ScriptedModel(responses=["<code>final_answer(1)</code>"], generation={"max_tokens": 9})
    agent = smolagents.CodeAgent(tools=[multiply], model=model, max_steps=2)
    rebuilt = smolagents.CodeAgent.from_dict(agent.to_dict())
    assert type(rebuilt.model) is ScriptedModel
    assert rebuilt.model.generation is not None and rebuilt.model.generation.max_tokens == 9
    assert rebuilt.run("one?") == 1


def test_a_rate_limit_error_without_a_status_is_retried_as_in_smolagents() -> None:
    from unittest.mock import MagicMock

    from hydragent.models import LiteLLMModel

    model = LiteLLMModel(model_id="test-model", retry={"initial_wait": 0.01, "jitter": 0})
    model.client = MagicMock()
    success = MagicMock()
    success.choices[0].message.content = "Success response"
    success.choices[0].message.tool_calls = None
    success.usage.prompt_tokens, success.usage.completion_tokens = 10, 20
    limited = Exception("Error code: 429 - Rate limit exceeded")
    model.client.completion.side_effect = [limited, limited, success]
    result = model.generate([{"role": "user", "content": "Test message"}])
    assert model.client.completion.call_count == 3
    assert result.content == "Success response"
    assert (result.token_usage.input_tokens, result.token_usage.output_tokens) == (10, 20)


def test_inference_client_token_rules_match_smolagents() -> None:
    from hydragent.models import InferenceClientModel

    assert InferenceClientModel(model_id="test-model", token="abc").client.token == "abc"
    assert InferenceClientModel(model_id="test-model", api_key="abc").client.token == "abc"
    with pytest.raises(ValueError, match=r"Received both `token` and `api_key` arguments\."):
        InferenceClientModel(model_id="test-model", token="abc", api_key="def")


@pytest.mark.parametrize(
    ("model_id", "flatten"),
    [("test-model", False), ("ollama", True), ("groq", True), ("cerebras", True)],
)
def test_litellm_flattens_for_the_providers_smolagents_flattens_for(
    model_id: str, flatten: bool
) -> None:
    from hydragent.models import LiteLLMModel

    assert LiteLLMModel(model_id=model_id).flatten_messages_as_text is flatten
    assert not LiteLLMModel(
        model_id="groq/x", flatten_messages_as_text=False
    ).flatten_messages_as_text


@pytest.mark.parametrize("backend", ["OpenAIModel", "LiteLLMModel"])
def test_sdk_tool_calls_become_serialisable_tool_calls(backend: str) -> None:
    from unittest.mock import MagicMock, patch

    import hydragent.models

    cls = getattr(hydragent.models, backend)
    if backend == "OpenAIModel":
        from openai.types.chat import ChatCompletion

        response = ChatCompletion.model_validate(
            {
                "id": "c",
                "created": 0,
                "model": "gpt-4o-mini",
                "object": "chat.completion",
                "choices": [
                    {
                        "finish_reason": "tool_calls",
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "call_test",
                                    "type": "function",
                                    "function": {
                                        "name": "final_answer",
                                        "arguments": "test_result",
                                    },
                                }
                            ],
                        },
                    }
                ],
                "usage": {"prompt_tokens": 69, "completion_tokens": 15, "total_tokens": 84},
            }
        )
    else:
        from litellm.types.utils import ModelResponse

        response = ModelResponse(
            choices=[
                {
                    "finish_reason": "tool_calls",
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_test",
                                "type": "function",
                                "function": {"name": "final_answer", "arguments": "test_result"},
                            }
                        ],
                    },
                }
            ],
            usage={"prompt_tokens": 69, "completion_tokens": 15, "total_tokens": 84},
        )
    client = MagicMock()
    client.chat.completions.create.return_value = response
    client.completion.return_value = response
    with patch.object(cls, "create_client", return_value=client):
        model = cls(model_id="gpt-4o-mini", api_key="k")
        result = model.generate(
            [{"role": "user", "content": "answer"}],
            tools_to_call_from=[smolagents.FinalAnswerTool()],
        )
    data = json.loads(result.model_dump_json())
    assert data["tool_calls"][0]["function"] == {"name": "final_answer", "arguments": "test_result"}
    assert result.token_usage.input_tokens == 69
