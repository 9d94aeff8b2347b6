"""TransformersModel on a tiny random model: generation, usage, stops, streaming, batching."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from hydragent import progress
from hydragent.generation import GenerationConfig
from hydragent.grammar import Grammar
from hydragent.messages import agglomerate_stream_deltas
from hydragent.models import TransformersModel
from hydragent.models.base import dry_build
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


def test_decoding_steps_move_the_progress_count_before_the_reply_arrives(
    model: TransformersModel,
) -> None:
    """A long batched generation shows progress while it decodes, not only once it ends."""
    before = progress.decoded()
    reply = model.generate([{"role": "user", "content": "count"}], max_new_tokens=12)
    steps = progress.decoded() - before
    assert steps >= reply.token_usage.output_tokens - 1 >= 1


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


@pytest.mark.parametrize("device_map", ["gpu0", "cuda:x", -1, True, "cpu0"])
def test_a_device_map_of_no_known_form_is_a_clear_error(tiny_dir: Path, device_map: object) -> None:
    with pytest.raises(ValueError, match="unknown device_map"):
        TransformersModel(model_id=str(tiny_dir), device_map=device_map)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("device_map", "gpus", "missing"),
    [
        ("cuda", 0, True),
        ("cuda:1", 2, False),
        ("cuda:2", 2, True),
        (1, 2, False),
        ("cpu", 0, False),
    ],
)
def test_validate_names_a_gpu_the_machine_lacks(
    device_map: object, gpus: int, missing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On this CPU machine the GPU count is set by hand; the check asks torch for it."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with dry_build():
        model = TransformersModel(model_id="org/tiny", device_map=device_map)  # type: ignore[arg-type]
    problems = dict(model.environment_problems())
    assert ("device_map" in problems) is missing
    if missing:
        assert f"this machine has {gpus} cuda device" in problems["device_map"]


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


# --- vision-language models --------------------------------------------------------------


@pytest.fixture(scope="module")
def vision_model(tmp_path_factory: pytest.TempPathFactory) -> TransformersModel:
    from tiny_models import build_tiny_llava

    folder = build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
    return TransformersModel(model_id=str(folder), max_new_tokens=8)


def _looking_at(image: object) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "What is it?"}],
        }
    ]


def test_a_vision_language_model_answers_a_message_with_an_image(
    vision_model: TransformersModel, tmp_path: Path
) -> None:
    image_module = pytest.importorskip("PIL.Image")
    red, blue = image_module.new("RGB", (40, 30), "red"), image_module.new("RGB", (40, 30), "blue")
    text_only = vision_model.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is it?"}], add_generation_prompt=True
    )["input_ids"]

    reply = vision_model.generate(_looking_at(red))

    assert vision_model.capabilities.images and vision_model.processor is not None
    assert isinstance(reply.content, str) and reply.content
    # the image reached the model: four image tokens in the prompt, and it changes the answer
    assert reply.token_usage.input_tokens == len(text_only) + 4
    assert vision_model.generate(_looking_at(blue)).content != reply.content
    # every image form arrives as the same picture: a path, bytes, base64, a data URL
    path = tmp_path / "red.png"
    red.save(path)
    encoded = base64.b64encode(path.read_bytes()).decode()
    for form in (str(path), path.read_bytes(), encoded, f"data:image/png;base64,{encoded}"):
        assert vision_model.generate(_looking_at(form)).content == reply.content
    streamed = list(vision_model.generate_stream(_looking_at(red)))
    assert "".join(d.content or "" for d in streamed) == reply.content
    assert streamed[-1].token_usage == reply.token_usage


def test_a_text_model_refuses_images_and_says_what_would_take_them(
    model: TransformersModel,
) -> None:
    assert not model.capabilities.images and model.processor is None
    picture = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    with pytest.raises(ValueError, match="flatten_messages_as_text cannot carry images"):
        model.generate(_looking_at(picture))  # text models flatten, as in smolagents
    structured = TransformersModel(
        model_id=model.model_id, max_new_tokens=2, flatten_messages_as_text=False
    )
    with pytest.raises(ValueError, match="text-only model, which cannot take images"):
        structured.generate(_looking_at(picture))


# --- the generation node, reasoning, dry build ---------------------------------------------


def test_the_generation_node_applies_under_the_model_and_call_keys(tiny_dir: Path) -> None:
    node = GenerationConfig(max_tokens=3, temperature=1.0, seed=4)
    from_node = TransformersModel(model_id=str(tiny_dir), generation=node)
    assert from_node.generate(QUESTION).token_usage.output_tokens <= 3
    # the node's temperature and seed sample exactly as the same keys given per call
    same_by_call = TransformersModel(model_id=str(tiny_dir), max_new_tokens=3)
    assert (
        from_node.generate(QUESTION).content
        == same_by_call.generate(QUESTION, temperature=1.0, seed=4).content
    )
    own_key = TransformersModel(model_id=str(tiny_dir), generation=node, max_new_tokens=6)
    assert own_key.generate(QUESTION, temperature=0).token_usage.output_tokens > 3
    assert own_key.generate(QUESTION, max_new_tokens=1).token_usage.output_tokens == 1


THINKING_TEMPLATE = (  # Qwen3/DeepSeek-R1 style: the template opens the <think> block itself
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is not defined or enable_thinking %}<think>\n{% endif %}{% endif %}"
)


@pytest.mark.parametrize("streaming", [False, True])
def test_think_blocks_become_reasoning_apart_from_the_answer(
    tiny_dir: Path, streaming: bool
) -> None:
    model = TransformersModel(model_id=str(tiny_dir), max_new_tokens=40)
    forced = {"type": "regex", "pattern": "<think>two plus two</think> four"}
    if streaming:
        reply = agglomerate_stream_deltas(model.generate_stream(QUESTION, grammar=forced))
    else:
        reply = model.generate(QUESTION, grammar=forced)
    assert (reply.reasoning_content, reply.content) == ("two plus two", "four")
    assert reply.token_usage.reasoning_tokens == len(
        model.tokenizer.encode("two plus two", add_special_tokens=False)
    )


def test_reasoning_effort_switches_a_templates_thinking_and_scorers_see_only_the_answer(
    tiny_dir: Path,
) -> None:
    from hydragent.agents.direct import DirectAgent

    forced = {"type": "regex", "pattern": "two plus two</think> four"}
    thinking = TransformersModel(
        model_id=str(tiny_dir), chat_template=THINKING_TEMPLATE, max_new_tokens=40
    )
    result = DirectAgent().run("What is 2+2?", thinking, grammar=Grammar.coerce(forced))
    assert result.answer == "four"  # what scorers receive
    assert result.messages[-1]["reasoning_content"] == "two plus two"  # what transcripts keep

    minimal = TransformersModel(
        model_id=str(tiny_dir),
        chat_template=THINKING_TEMPLATE,
        max_new_tokens=40,
        generation={"reasoning_effort": "minimal"},
    )
    # minimal turns the template's thinking off: the prompt no longer opens a <think> block
    assert (
        minimal.generate(QUESTION, max_new_tokens=1).token_usage.input_tokens
        < thinking.generate(QUESTION, max_new_tokens=1).token_usage.input_tokens
    )
    overridden = TransformersModel(
        model_id=str(tiny_dir),
        chat_template=THINKING_TEMPLATE,
        generation={"reasoning_effort": "minimal"},
        apply_chat_template_kwargs={"enable_thinking": True},
    )
    assert (
        overridden.generate(QUESTION, max_new_tokens=1).token_usage.input_tokens
        == thinking.generate(QUESTION, max_new_tokens=1).token_usage.input_tokens
    )


def test_a_dry_build_loads_nothing_and_reports_what_a_run_would_lack(tiny_dir: Path) -> None:
    with dry_build():
        missing = TransformersModel(model_id="/nowhere/model", generation={"max_tokens": 8})
        present = TransformersModel(model_id=str(tiny_dir))
        bad_gguf = TransformersModel(model_id=str(tiny_dir), gguf_file="absent.gguf")
    assert missing.model is None and missing.tokenizer is None
    assert missing.environment_problems() == [
        ("model_id", "no such folder: /nowhere/model (give a local model folder or a hub id)")
    ]
    assert present.model is None and present.environment_problems() == []
    assert [key for key, _ in bad_gguf.environment_problems()] == ["gguf_file"]


def test_a_dry_build_of_a_vision_checkpoint_says_it_takes_images(
    vision_model: TransformersModel,
) -> None:
    with dry_build():
        dry = TransformersModel(model_id=vision_model.model_id)
    assert dry.model is None and dry.capabilities.images
    assert not dry.flatten_messages_as_text
