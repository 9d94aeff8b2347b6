"""MLXModel for real on this machine's CPU, on a tiny random llama written where mlx_lm reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mlx.core")
pytest.importorskip("mlx_lm")

from hydragent.models import MLXModel
from tiny_models import build_tiny_llama

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-mlx"))


@pytest.fixture(scope="module")
def model(tiny_dir: Path) -> MLXModel:
    return MLXModel(model_id=str(tiny_dir), max_tokens=20)


def test_generate_returns_text_and_real_token_usage(model: MLXModel) -> None:
    reply = model.generate(QUESTION)
    prompt = model.hf_tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True)

    assert isinstance(reply.content, str) and reply.content
    assert reply.token_usage.input_tokens == len(prompt["input_ids"])
    assert 0 < reply.token_usage.output_tokens <= 20


def test_mlx_and_transformers_agree_on_the_same_weights(model: MLXModel, tiny_dir: Path) -> None:
    pytest.importorskip("torch")
    from hydragent.models import TransformersModel

    reference = TransformersModel(model_id=str(tiny_dir), max_new_tokens=20)
    assert model.generate(QUESTION).content == reference.generate(QUESTION).content


def test_max_tokens_is_a_call_keyword(model: MLXModel) -> None:
    assert model.generate(QUESTION, max_tokens=4).token_usage.output_tokens == 4


def test_stop_sequence_across_token_boundaries_is_caught(model: MLXModel) -> None:
    free = model.generate(QUESTION)
    text = free.content
    boundary = next(
        end
        for end in _token_boundaries(model, free.token_usage.output_tokens)
        if 2 < end < len(text)
        and "\ufffd" not in text[end - 1 : end + 1]
        and text.find(text[end - 1 : end + 1]) == end - 1
    )
    stop = text[boundary - 1 : boundary + 1]

    stopped = model.generate(QUESTION, stop_sequences=[stop])

    assert stopped.content == text[: boundary - 1]
    assert stopped.token_usage.output_tokens < free.token_usage.output_tokens


def test_streaming_yields_the_text_then_usage(model: MLXModel) -> None:
    whole = model.generate(QUESTION)
    deltas = list(model.generate_stream(QUESTION))
    assert len(deltas) > 2
    assert "".join(d.content or "" for d in deltas) == whole.content
    assert deltas[-1].token_usage == whole.token_usage


def test_a_tokenizer_without_template_falls_back_to_plain(tmp_path: Path) -> None:
    folder = build_tiny_llama(tmp_path, chat_template=None)
    model = MLXModel(model_id=str(folder), max_tokens=3)
    assert model.generate(QUESTION).token_usage.input_tokens > 0


def _token_boundaries(model: MLXModel, count: int) -> list[int]:
    """Character offsets between greedily generated tokens, read off mlx_lm's own stream."""
    from mlx_lm import stream_generate

    prompt = model.hf_tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True)
    tokens = [
        r.token
        for r in stream_generate(
            model.model, model.tokenizer, prompt["input_ids"], max_tokens=count
        )
    ]
    return [len(model.hf_tokenizer.decode(tokens[:n])) for n in range(1, len(tokens))]


def test_plain_transcript_answers_end_where_the_next_turn_would_begin(tiny_dir: Path) -> None:
    model = MLXModel(model_id=str(tiny_dir), chat_template="plain", max_tokens=30)
    runs_on = {"type": "regex", "pattern": " Paris\nUser: and Rome"}  # forces the overrun
    assert model.generate(QUESTION, grammar=runs_on).content == "Paris"


def test_a_seeded_sampled_reply_repeats_and_another_seed_differs(model: MLXModel) -> None:
    def sampled(seed: int) -> str:
        return model.generate(QUESTION, temperature=1.0, seed=seed).content or ""

    first = sampled(seed=1)
    assert sampled(seed=1) == first
    assert sampled(seed=2) != first  # 20 tokens drawn at temperature 1 from a random model


def test_the_generation_node_sets_max_tokens_unless_the_model_or_call_does(tiny_dir: Path) -> None:
    from_node = MLXModel(model_id=str(tiny_dir), generation={"max_tokens": 3})
    assert from_node.generate(QUESTION).token_usage.output_tokens == 3
    own = MLXModel(model_id=str(tiny_dir), max_tokens=5, generation={"max_tokens": 3})
    assert own.generate(QUESTION).token_usage.output_tokens == 5
    assert own.generate(QUESTION, max_tokens=2).token_usage.output_tokens == 2


def test_think_blocks_become_reasoning_apart_from_the_answer(model: MLXModel) -> None:
    forced = {"type": "regex", "pattern": "<think>two plus two</think> four"}
    reply = model.generate(QUESTION, grammar=forced, max_tokens=40)
    assert (reply.reasoning_content, reply.content) == ("two plus two", "four")
    deltas = list(model.generate_stream(QUESTION, grammar=forced, max_tokens=40))
    assert "".join(d.reasoning_content or "" for d in deltas) == "two plus two"
    assert reply.token_usage.reasoning_tokens > 0


def test_a_dry_build_loads_nothing_and_reports_a_missing_folder() -> None:
    from hydragent.models.base import dry_build

    with dry_build():
        model = MLXModel(model_id="./no/such/mlx-model")
    assert model.model is None
    assert model.environment_problems() == [
        ("model_id", "no such folder: ./no/such/mlx-model (give a local model folder or a hub id)")
    ]
