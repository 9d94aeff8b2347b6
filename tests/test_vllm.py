"""VLLMModel up to the engine: a small fake `vllm` module stands in at the one import seam.

vLLM needs a GPU and cannot be installed here, so the fake records exactly what the backend
hands to `vllm.LLM`, `SamplingParams`, `StructuredOutputsParams` and `LLM.generate`; the
tokenizer it returns is a real (tiny) Hugging Face tokenizer, so prompts are rendered for real.
"""

from __future__ import annotations

import gc
import threading
import types
import weakref
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from hydragent.models import VLLMModel
from hydragent.models import vllm as vllm_backend
from tiny_models import build_tiny_tokenizer

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


class Recorded:
    """Stands in for SamplingParams / StructuredOutputsParams: keeps the keyword arguments."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class FakeLLM:
    """Answers every prompt with a fixed completion and records each generate call."""

    instances: list[FakeLLM] = []

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model, self.kwargs = model, kwargs
        self.generate_calls: list[tuple[list[dict], list[Recorded]]] = []
        self.tokenizer = FakeLLM.tokenizer_factory()
        FakeLLM.instances.append(self)

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def generate(self, prompts: list[dict], sampling_params: list, use_tqdm: bool) -> list:
        self.generate_calls.append((prompts, sampling_params))
        text = "Paris"
        return [
            types.SimpleNamespace(
                prompt_token_ids=p["prompt_token_ids"],
                outputs=[
                    types.SimpleNamespace(
                        text=text, token_ids=self.tokenizer.encode(text), finish_reason="stop"
                    )
                ],
            )
            for p in prompts
        ]


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    tokenizer = build_tiny_tokenizer(tmp_path)
    FakeLLM.tokenizer_factory = staticmethod(lambda: tokenizer)
    FakeLLM.instances = []
    module = types.SimpleNamespace(
        LLM=FakeLLM,
        SamplingParams=Recorded,
        sampling_params=types.SimpleNamespace(StructuredOutputsParams=Recorded),
    )
    monkeypatch.setattr(vllm_backend, "import_vllm", lambda: module)
    return module


def test_engine_is_built_from_model_id_and_model_kwargs(fake_vllm) -> None:
    VLLMModel("Qwen/Qwen2.5-0.5B-Instruct", model_kwargs={"gpu_memory_utilization": 0.5})
    engine = FakeLLM.instances[-1]
    assert engine.model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert engine.kwargs == {"gpu_memory_utilization": 0.5}


def test_every_generation_parameter_goes_into_sampling_params(fake_vllm) -> None:
    model = VLLMModel("m", temperature=0.0, max_new_tokens=64)
    reply = model.generate(QUESTION, stop_sequences=["Observation:"], top_p=0.9, seed=3)

    prompts, params = FakeLLM.instances[-1].generate_calls[-1]
    tokenizer = FakeLLM.instances[-1].tokenizer
    assert params[0].kwargs == {
        "stop": ["Observation:"],
        "temperature": 0.0,
        "max_tokens": 64,
        "top_p": 0.9,
        "seed": 3,
        "stop_token_ids": [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")],
    }
    expected_prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True)
    assert prompts == [{"prompt_token_ids": expected_prompt["input_ids"]}]
    assert reply.content == "Paris"
    assert reply.token_usage.input_tokens == len(expected_prompt["input_ids"])
    assert reply.token_usage.output_tokens == len(tokenizer.encode("Paris"))


@pytest.mark.parametrize(
    ("grammar", "expected"),
    [
        ({"type": "json_object"}, {"json_object": True}),
        (
            {"type": "json_schema", "schema": {"type": "object", "required": ["a"]}},
            {"json": {"type": "object", "required": ["a"]}},
        ),
        ({"type": "regex", "pattern": "[0-9]+"}, {"regex": "[0-9]+"}),
        ({"type": "choice", "choices": ["yes", "no"]}, {"choice": ["yes", "no"]}),
    ],
)
def test_grammar_becomes_structured_outputs(fake_vllm, grammar: dict, expected: dict) -> None:
    model = VLLMModel("m")
    model.generate(QUESTION, grammar=grammar)
    _, params = FakeLLM.instances[-1].generate_calls[-1]
    assert params[0].kwargs["structured_outputs"].kwargs == expected


def test_response_format_is_structured_output_too(fake_vllm) -> None:
    model = VLLMModel("m")
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    model.generate(QUESTION, response_format=response_format)
    _, params = FakeLLM.instances[-1].generate_calls[-1]
    assert params[0].kwargs["structured_outputs"].kwargs == {"json": schema}


def test_chat_template_includes_the_tools(fake_vllm) -> None:
    tool = {"name": "get_weather", "description": "Weather for a city", "parameters": {}}
    model = VLLMModel("m", chat_template="chatml")
    reply = model.generate(QUESTION, tools_to_call_from=[tool])  # "Paris": no tool call in it
    assert reply.tool_calls is None  # left to the agent, which shows the model why (issue 19.7)
    with pytest.raises(ValueError, match="does not contain any JSON blob"):
        model.parse_tool_calls(reply)
    prompts, _ = FakeLLM.instances[-1].generate_calls[-1]
    prompt_text = model.tokenizer.decode(prompts[0]["prompt_token_ids"])
    assert "get_weather" in prompt_text and "Weather for a city" in prompt_text


def test_concurrent_requests_become_one_generate_call(fake_vllm) -> None:
    model = VLLMModel("m", batch_window_s=0.5)
    barrier = threading.Barrier(5)
    replies: list = []

    def ask(n: int) -> None:
        barrier.wait()
        replies.append(model.generate([{"role": "user", "content": "hi " * n}], seed=n))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    calls = FakeLLM.instances[-1].generate_calls
    assert len(calls) == 1
    prompts, params = calls[0]
    assert len(prompts) == 5
    assert sorted(p.kwargs["seed"] for p in params) == list(range(5))
    assert [r.content for r in replies] == ["Paris"] * 5


def test_cleanup_releases_the_engine(fake_vllm) -> None:
    model = VLLMModel("m")
    engine = weakref.ref(FakeLLM.instances.pop())
    model.cleanup()
    gc.collect()
    assert engine() is None


def test_without_vllm_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(ImportError, match=r"pip install 'hydragent\[vllm\]'"):
        VLLMModel("m")


def test_the_generation_node_maps_to_sampling_params_under_model_and_call_keys(
    fake_vllm,
) -> None:
    node = {
        "max_tokens": 99,
        "temperature": 0.7,
        "top_p": 0.5,
        "top_k": 20,
        "seed": 1,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "reasoning_tokens": 256,
        "stop": ["END"],
    }
    model = VLLMModel("m", generation=node, temperature=0.0)  # the model's own key wins
    model.generate(QUESTION, top_k=5, max_new_tokens=7)  # and the call's over the node
    _, params = FakeLLM.instances[-1].generate_calls[-1]
    kwargs = params[0].kwargs
    assert {k: v for k, v in kwargs.items() if k != "stop_token_ids"} == {
        "stop": ["END"],
        "temperature": 0.0,
        "top_k": 5,
        "max_tokens": 7,
        "top_p": 0.5,
        "seed": 1,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "thinking_token_budget": 256,
    }


def test_reasoning_effort_reaches_a_template_that_takes_enable_thinking(fake_vllm) -> None:
    template = (
        "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
        "{% if enable_thinking is defined and not enable_thinking %}/no_think{% endif %}"
    )
    quiet = VLLMModel("m", chat_template=template, generation={"reasoning_effort": "minimal"})
    quiet.generate(QUESTION)
    prompts, _ = FakeLLM.instances[-1].generate_calls[-1]
    assert quiet.tokenizer.decode(prompts[0]["prompt_token_ids"]).endswith("/no_think")
    thinking = VLLMModel("m", chat_template=template, generation={"reasoning_effort": "high"})
    thinking.generate(QUESTION)
    prompts, _ = FakeLLM.instances[-1].generate_calls[-1]
    assert "/no_think" not in thinking.tokenizer.decode(prompts[0]["prompt_token_ids"])


def test_think_blocks_in_the_completion_become_reasoning(
    fake_vllm, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = VLLMModel("m")
    engine = FakeLLM.instances[-1]
    original = engine.generate

    def thinking_generate(prompts: list[dict], sampling_params: list, use_tqdm: bool) -> list:
        outputs = original(prompts, sampling_params, use_tqdm)
        for output in outputs:
            output.outputs[0].text = "<think>France's capital.</think>\nParis"
        return outputs

    monkeypatch.setattr(engine, "generate", thinking_generate)
    reply = model.generate(QUESTION)
    assert (reply.content, reply.reasoning_content) == ("Paris", "France's capital.")
    assert reply.token_usage.reasoning_tokens > 0
    assert reply.dict()["reasoning_content"] == "France's capital."


def test_a_dry_build_starts_no_engine_and_names_the_missing_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from hydragent.models.base import dry_build

    def no_vllm() -> None:
        raise AssertionError("a dry build must not import vllm")

    monkeypatch.setattr(vllm_backend, "import_vllm", no_vllm)
    with dry_build():
        model = VLLMModel("/no/such/checkpoint", model_kwargs={"gpu_memory_utilization": 0.5})
    assert model.llm is None
    problems = dict(model.environment_problems())
    assert problems["model_id"].startswith("no such folder: /no/such/checkpoint")
    if importlib.util.find_spec("vllm") is None:
        assert "pip install 'hydragent[vllm]'" in problems["_target_"]
