"""A tool call a local model writes badly is an observation, not a failed sample (issue 19.7).

Local backends (Transformers, MLX, vLLM) read tool calls from the model's text. A reply with
no readable call comes back as text, as an API backend's reply does; the tool-calling agent
then tells the model what was wrong, and it can try again.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("transformers")

from hydragent.agents.tool_calling import ToolCallingAgent
from hydragent.models import vllm as vllm_backend
from tiny_models import build_tiny_llama, build_tiny_tokenizer

TASK = "What is 1234 * 5678?"
TOOLS = [{"name": "get_weather", "description": "Weather for a city", "parameters": {}}]
COULD_NOT_READ = "could not read a tool call from your answer"


class ScriptedEngine:
    """A stand-in `vllm.LLM` whose completion is whatever the test sets in `text`."""

    text = "Paris"
    tokenizer: Any = None

    def __init__(self, model: str, **kwargs: Any) -> None:
        pass

    def get_tokenizer(self) -> Any:
        return ScriptedEngine.tokenizer

    def generate(self, prompts: list[dict], sampling_params: list, use_tqdm: bool) -> list:
        completion = types.SimpleNamespace(text=ScriptedEngine.text, token_ids=[1])
        return [
            types.SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[completion])
            for p in prompts
        ]


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ScriptedEngine.tokenizer = build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    module = types.SimpleNamespace(
        LLM=ScriptedEngine, SamplingParams=dict, sampling_params=types.SimpleNamespace()
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vllm_backend, "import_vllm", lambda: module)
        yield vllm_backend.VLLMModel("m", batch_window_s=0.0)


def observations(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m["content"]) for m in messages if m["role"] == "tool-response"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_any_reply_text_comes_back_as_a_reply_never_as_an_error(vllm_model: Any, text: str) -> None:
    """Whatever a local model writes, `generate` with tools returns it; a call that cannot be
    read is left for `parse_tool_calls`, whose ValueError the agent turns into an observation."""
    ScriptedEngine.text = text
    reply = vllm_model.generate([{"role": "user", "content": TASK}], tools_to_call_from=TOOLS)
    if reply.tool_calls is None:
        with pytest.raises(ValueError):
            vllm_model.parse_tool_calls(reply)


def test_the_agent_sees_the_parse_error_and_retries_then_answers(vllm_model: Any) -> None:
    ScriptedEngine.text = "I think the answer is 7006652."  # no JSON blob: no tool call
    result = ToolCallingAgent(max_steps=2).run(TASK, vllm_model)
    assert result.status == "ok" and result.error is None
    seen = observations(result.messages)
    assert len(seen) == 2 and all(COULD_NOT_READ in s for s in seen)  # one per step, retried
    assert result.answer == "I think the answer is 7006652."  # the final-answer turn


def test_a_readable_call_is_still_a_tool_call(vllm_model: Any) -> None:
    ScriptedEngine.text = '{"name": "final_answer", "arguments": {"answer": "7006652"}}'
    result = ToolCallingAgent(max_steps=2).run(TASK, vllm_model)
    assert (result.status, result.answer, result.steps) == ("ok", "7006652", 1)


@pytest.mark.parametrize("backend", ["transformers", "mlx"])
def test_a_tiny_local_model_without_a_json_blob_is_an_observation(
    backend: str, tmp_path: Path
) -> None:
    """A tiny random model writes no JSON tool call: the sample goes on, with the reason."""
    folder = build_tiny_llama(tmp_path)
    if backend == "mlx":
        pytest.importorskip("mlx_lm")
        from hydragent.models import MLXModel

        model: Any = MLXModel(model_id=str(folder), max_tokens=12)
    else:
        from hydragent.models import TransformersModel

        model = TransformersModel(model_id=str(folder), chat_template="plain", max_new_tokens=12)
    result = ToolCallingAgent(max_steps=1).run(TASK, model)
    assert result.status == "ok", result.error
    assert any(COULD_NOT_READ in s for s in observations(result.messages))
