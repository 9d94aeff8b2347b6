"""TransformersModel on a tiny random model: generation, usage, stops, streaming, batching."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from hydragent.models import TransformersModel
from hydragent.models.chat_templates import TEMPLATES
from tiny_models import build_tiny_llama

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def model(tiny_dir: Path) -> TransformersModel:
    return TransformersModel(model_id=str(tiny_dir), max_new_tokens=20)


def test_generate_returns_text_and_real_token_usage(model: TransformersModel) -> None:
    reply = model.generate(QUESTION)
    prompt = model.tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True)["input_ids"]

    assert isinstance(reply.content, str) and reply.content
    assert reply.token_usage.input_tokens == len(prompt)
    assert 0 < reply.token_usage.output_tokens <= 20
    assert model(QUESTION).content == reply.content  # calling the model is generate


def test_max_tokens_is_an_alias_and_a_call_keyword(tiny_dir: Path) -> None:
    short = TransformersModel(model_id=str(tiny_dir), max_tokens=5)
    assert short.max_new_tokens == 5
    assert short.generate(QUESTION).token_usage.output_tokens <= 5
    assert short.generate(QUESTION, max_new_tokens=3).token_usage.output_tokens <= 3


def test_stop_sequence_spanning_tokens_is_caught(model: TransformersModel) -> None:
    free = model.generate(QUESTION)
    text = free.content
    # a stop made of the last character of one token and the first character of the next
    boundary = next(
        end
        for end in _token_boundaries(model, QUESTION, 20)
        if 2 < end < len(text)
        and "\ufffd" not in text[end - 1 : end + 1]
        and text.find(text[end - 1 : end + 1]) == end - 1
    )
    stop, expected = text[boundary - 1 : boundary + 1], text[: boundary - 1]

    stopped = model.generate(QUESTION, stop_sequences=[stop])

    assert stopped.content == expected
    assert stop not in stopped.content
    assert stopped.token_usage.output_tokens < free.token_usage.output_tokens


def test_streaming_yields_the_same_text_and_usage(model: TransformersModel) -> None:
    whole = model.generate(QUESTION)
    deltas = list(model.generate_stream(QUESTION))

    assert "".join(d.content or "" for d in deltas) == whole.content
    assert deltas[-1].token_usage == whole.token_usage


def test_streaming_holds_back_and_cuts_a_stop_sequence(model: TransformersModel) -> None:
    whole = model.generate(QUESTION).content
    stop = whole[6:9]
    streamed = "".join(d.content or "" for d in model.generate_stream(QUESTION, [stop]))
    assert streamed == whole[: whole.find(stop)]


def test_concurrent_calls_are_batched_and_match_one_at_a_time(tiny_dir: Path) -> None:
    prompts = [[{"role": "user", "content": "hello " * n + "?"}] for n in range(1, 7)]
    alone = TransformersModel(model_id=str(tiny_dir), max_new_tokens=16, max_batch_size=1)
    expected = [alone.generate(p) for p in prompts]

    batched = TransformersModel(
        model_id=str(tiny_dir), max_new_tokens=16, max_batch_size=8, batch_window_s=0.5
    )
    results: list = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts))

    def ask(index: int) -> None:
        barrier.wait()
        results[index] = batched.generate(prompts[index])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert max(batched._batcher.batch_sizes) > 1, "the calls should have shared a batch"
    assert [r.content for r in results] == [e.content for e in expected]
    assert [r.token_usage for r in results] == [e.token_usage for e in expected]


def test_tokenizer_without_template_gets_the_declared_fallback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = build_tiny_llama(tmp_path, chat_template=None)
    model = TransformersModel(model_id=str(folder), max_new_tokens=4)
    assert "fallback" in caplog.text

    reply = model.generate(QUESTION)
    assert reply.token_usage.output_tokens > 0
    plain = model.tokenizer.apply_chat_template(
        QUESTION, chat_template=TEMPLATES["plain"], add_generation_prompt=True, tokenize=False
    )
    assert plain.endswith("Assistant:")
    assert reply.token_usage.input_tokens == len(model.tokenizer.encode(plain))


def test_declared_gemma_template_puts_system_text_in_the_first_user_turn() -> None:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"x": 0}, "x")))
    rendered = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome"},
            {"role": "user", "content": "Of France?"},
        ],
        chat_template=TEMPLATES["gemma"],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert rendered == (
        "<start_of_turn>user\nBe brief.\n\nCapital of Italy?<end_of_turn>\n"
        "<start_of_turn>model\nRome<end_of_turn>\n"
        "<start_of_turn>user\nOf France?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


@pytest.mark.parametrize("streaming", [False, True])
def test_plain_transcript_answers_end_where_the_next_turn_would_begin(
    tiny_dir: Path, streaming: bool
) -> None:
    """A base model on the plain template runs on into "User: ..."; the answer stops there."""
    model = TransformersModel(model_id=str(tiny_dir), chat_template="plain", max_new_tokens=30)
    runs_on = {"type": "regex", "pattern": " Paris\nUser: and Rome"}  # forces the overrun
    if streaming:
        content = "".join(d.content or "" for d in model.generate_stream(QUESTION, grammar=runs_on))
    else:
        content = model.generate(QUESTION, grammar=runs_on).content
    assert content == "Paris"


def test_chat_template_can_be_chosen_by_name_and_unknown_names_fail_clearly(
    tiny_dir: Path,
) -> None:
    chatml = TransformersModel(model_id=str(tiny_dir), chat_template="chatml", max_new_tokens=2)
    assert chatml.generate(QUESTION).token_usage.input_tokens > 0
    with pytest.raises(ValueError, match="unknown chat_template 'klingon'; valid: plain, gemma"):
        TransformersModel(model_id=str(tiny_dir), chat_template="klingon")


def test_tools_reach_the_prompt_and_a_tool_call_is_parsed(tiny_dir: Path) -> None:
    tool = {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    model = TransformersModel(model_id=str(tiny_dir), chat_template="plain", max_new_tokens=120)
    schema = {
        "type": "object",
        "properties": {
            "name": {"enum": ["get_weather"]},
            "arguments": {
                "type": "object",
                "properties": {"city": {"enum": ["Paris", "Rome"]}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
    reply = model.generate(
        QUESTION,
        tools_to_call_from=[tool],
        grammar={"type": "json_schema", "schema": schema},
    )
    without_tools = model.generate(QUESTION, max_new_tokens=1)
    assert reply.token_usage.input_tokens > without_tools.token_usage.input_tokens
    call = reply.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments["city"] in ("Paris", "Rome")


def test_unknown_dtype_is_a_clear_error(tiny_dir: Path) -> None:
    with pytest.raises(ValueError, match="torch_dtype 'float77'"):
        TransformersModel(model_id=str(tiny_dir), torch_dtype="float77")


def _token_boundaries(model: TransformersModel, messages: list, limit: int) -> list[int]:
    """Character offsets where one greedily generated token ends and the next begins."""
    prompt = model.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.model.generate(**prompt, max_new_tokens=limit, do_sample=False)
    new_tokens = output[0, prompt["input_ids"].shape[1] :].tolist()
    return [len(model.tokenizer.decode(new_tokens[:n])) for n in range(1, len(new_tokens))]


def test_a_seeded_sampled_reply_repeats_and_another_seed_differs(model: TransformersModel) -> None:
    def sampled(seed: int) -> str:
        return model.generate(QUESTION, temperature=1.0, seed=seed).content or ""

    first = sampled(seed=1)
    assert sampled(seed=1) == first
    assert sampled(seed=2) != first  # 20 tokens drawn at temperature 1 from a random model
    streamed = "".join(
        d.content or "" for d in model.generate_stream(QUESTION, temperature=1.0, seed=1)
    )
    assert streamed == first


def test_the_run_seed_is_a_default_that_a_model_seed_overrides(tiny_dir: Path) -> None:
    run_seeded = TransformersModel(model_id=str(tiny_dir), max_new_tokens=20, temperature=1.0)
    run_seeded.apply_seed(5)
    own_seed = TransformersModel(model_id=str(tiny_dir), max_new_tokens=20, temperature=1.0, seed=9)
    own_seed.apply_seed(5)
    assert run_seeded.kwargs["seed"] == 5 and own_seed.kwargs["seed"] == 9
    assert run_seeded.generate(QUESTION).content == run_seeded.generate(QUESTION).content
