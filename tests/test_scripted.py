"""ScriptedModel: the deterministic offline backend behind tests, demos and dry runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydragent.config import compose
from hydragent.messages import ChatMessageStreamDelta, TokenUsage, agglomerate_stream_deltas
from hydragent.models.scripted import ScriptedModel, ScriptedModelExhausted

ASK = [{"role": "user", "content": "What is 2 + 2?"}]


def answer_with_question_length(messages: list[dict[str, Any]]) -> str:
    """A responder a config can name with `_target_`: it sees the prepared messages."""
    return f"{len(messages[-1]['content'][0]['text'])} characters"


def test_responses_from_a_list_come_back_in_order_then_cycle() -> None:
    model = ScriptedModel(responses=["four", "five"])
    answers = [model(ASK).content for _ in range(3)]
    assert answers == ["four", "five", "four"]


def test_exhausted_error_raises_a_clear_error_instead_of_cycling() -> None:
    model = ScriptedModel(responses=["only"], exhausted="error")
    assert model(ASK).content == "only"
    with pytest.raises(ScriptedModelExhausted, match="exhausted=cycle"):
        model(ASK)


def test_an_unknown_exhausted_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="'cycle' or 'error'"):
        ScriptedModel(responses=["x"], exhausted="loop")


def test_responses_from_a_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    path.write_text('"plain text"\n\n{"content": "from a dict"}\n')
    model = ScriptedModel(responses_file=str(path))
    assert [model(ASK).content for _ in range(2)] == ["plain text", "from a dict"]


def test_responses_from_a_json_list_file(tmp_path: Path) -> None:
    path = tmp_path / "responses.json"
    path.write_text(json.dumps(["a", {"content": "b"}]))
    model = ScriptedModel(responses_file=str(path))
    assert [model(ASK).content for _ in range(2)] == ["a", "b"]


def test_a_responses_file_given_on_the_command_line_is_the_whole_list(tmp_path: Path) -> None:
    """The story of issue 21: `model=scripted model.responses_file=F` must answer the first
    question with F's first line; a default reply in front of the file shifted every answer."""
    path = tmp_path / "answers.jsonl"
    path.write_text('"Paris"\n"5"\n"blue"\n')
    cfg = compose(["model=scripted", "model.match=null", f"model.responses_file={path}"])
    model = instantiate(cfg.model)
    assert [model(ASK).content for _ in range(4)] == ["Paris", "5", "blue", "Paris"]


def test_responses_and_a_responses_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text('"Paris"\n')
    with pytest.raises(ValueError, match=r"both set.*model.responses=null"):
        ScriptedModel(responses=["first"], responses_file=str(path))


def test_the_fallback_answers_what_no_match_covers() -> None:
    model = instantiate(compose(["model=scripted"]).model)
    assert model([{"role": "user", "content": "What is the capital of France?"}]).content == (
        "Paris"
    )
    assert model([{"role": "user", "content": "Who wrote Hamlet?"}]).content == "I do not know."


def test_a_missing_responses_file_is_named() -> None:
    with pytest.raises(ValueError, match="responses_file not found"):
        ScriptedModel(responses_file="/nonexistent/responses.jsonl")


def test_a_model_with_nothing_to_say_is_refused() -> None:
    with pytest.raises(ValueError, match="needs responses"):
        ScriptedModel()


def test_a_callable_given_by_target_in_config_produces_the_responses() -> None:
    node = OmegaConf.create(
        {
            "_target_": "hydragent.models.scripted.ScriptedModel",
            "responder": {"_target_": f"{__name__}.answer_with_question_length", "_partial_": True},
        }
    )
    model = instantiate(node)
    assert model(ASK).content == "14 characters"


def test_model_scripted_in_config_composes_and_builds() -> None:
    cfg = compose(["model=scripted", "model.responses=[hello]"])
    model = instantiate(cfg.model)
    assert isinstance(model, ScriptedModel)
    assert model(ASK).content == "hello"


def test_responses_may_contain_tool_calls() -> None:
    model = ScriptedModel(
        responses=[
            {"content": None, "tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 2}}]},
        ]
    )
    message = model(ASK, tools_to_call_from=[])
    (call,) = message.tool_calls
    assert (call.function.name, call.function.arguments) == ("add", {"a": 2, "b": 2})
    assert call.id
    assert message.content is None


def test_stop_sequences_cut_the_scripted_text() -> None:
    model = ScriptedModel(responses=["Thought: easy\nCode: print(4)<end_code>\nObservation: 4"])
    message = model(ASK, stop_sequences=["<end_code>", "Observation:"])
    assert message.content == "Thought: easy\nCode: print(4)"


def test_every_call_is_recorded() -> None:
    model = ScriptedModel(responses=["4"], custom_role_conversions={"system": "user"})
    model(
        [{"role": "system", "content": "Be brief."}, *ASK],
        stop_sequences=["\n"],
        temperature=0,
    )
    (call,) = model.calls
    assert call["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Be brief.\nWhat is 2 + 2?"}]}
    ]
    assert call["stop_sequences"] == ["\n"]
    assert call["kwargs"] == {"temperature": 0}


def test_match_answers_by_substring_of_the_last_user_message() -> None:
    model = ScriptedModel(match={"2 + 2": "4", "capital": "Paris"})
    assert model([{"role": "user", "content": "The capital of France?"}]).content == "Paris"
    assert model(ASK).content == "4"
    with pytest.raises(ScriptedModelExhausted, match="no scripted response matches"):
        model([{"role": "user", "content": "unrelated"}])


def test_token_usage_is_always_reported() -> None:
    message = ScriptedModel(responses=["four"])(ASK)
    assert isinstance(message.token_usage, TokenUsage)
    assert message.token_usage.input_tokens > 0 and message.token_usage.output_tokens == 1


def test_streaming_yields_deltas_that_merge_back_into_the_answer() -> None:
    model = ScriptedModel(responses=["two plus two is four"])
    deltas = list(model.generate_stream(ASK))
    assert all(isinstance(d, ChatMessageStreamDelta) for d in deltas)
    merged = agglomerate_stream_deltas(deltas)
    assert merged.content == "two plus two is four"
    assert merged.token_usage.output_tokens == 5


def test_a_response_that_breaks_the_grammar_is_an_error() -> None:
    model = ScriptedModel(responses=["not json", '{"answer": "4"}'])
    grammar = {"type": "json_object"}
    with pytest.raises(ValueError, match="violates grammar=json_object"):
        model(ASK, grammar=grammar)
    assert model(ASK, grammar=grammar).content == '{"answer": "4"}'
