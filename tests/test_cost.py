"""Pricing a sample's tokens: LiteLLM's bundled cost map, or the user's own price list."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hydragent.cost import price


def test_a_custom_model_is_priced_from_the_users_price_list() -> None:
    usage = {"input_tokens": 2_000, "output_tokens": 500, "total_tokens": 2_500}
    pricing = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
    assert price("my-finetune", usage, pricing) == pytest.approx(2_000 * 3e-6 + 500 * 15e-6)


def test_cached_prompt_tokens_use_their_own_rate_when_given() -> None:
    usage = {"input_tokens": 1_000, "output_tokens": 0, "cached_tokens": 400}
    pricing = {"input_per_mtok": 2.0, "output_per_mtok": 8.0, "cached_input_per_mtok": 0.5}
    assert price("m", usage, pricing) == pytest.approx(600 * 2e-6 + 400 * 0.5e-6)


def test_a_price_list_with_a_typo_is_refused() -> None:
    with pytest.raises(ValueError, match="input_per_mtk"):
        price("m", {"input_tokens": 1}, {"input_per_mtk": 1.0, "output_per_mtok": 1.0})


def test_a_model_litellm_knows_is_priced_from_its_local_map() -> None:
    litellm = pytest.importorskip("litellm", reason="needs the litellm extra")
    usage = {"input_tokens": 1_000, "output_tokens": 500}
    info = litellm.model_cost["gpt-4o-mini"]
    expected = 1_000 * info["input_cost_per_token"] + 500 * info["output_cost_per_token"]
    assert price("gpt-4o-mini", usage) == pytest.approx(expected)
    assert price("openai/gpt-4o-mini", usage) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("model_id", "usage"),
    [
        ("gpt-4o-mini", {"input_tokens": 1_200, "output_tokens": 300, "cached_tokens": 200}),
        ("azure/gpt-4o-mini", {"input_tokens": 5_000, "output_tokens": 40}),
        ("o3", {"input_tokens": 800, "output_tokens": 2_000, "cached_tokens": 512}),
        ("us.amazon.nova-lite-v1:0", {"input_tokens": 3_000, "output_tokens": 250}),
    ],
)
def test_prices_agree_with_litellms_own_computation(model_id: str, usage: dict) -> None:
    """The map is read as data; litellm's cost_per_token on the same counts is the check."""
    litellm = pytest.importorskip("litellm", reason="needs the litellm extra")
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=model_id,
        prompt_tokens=usage["input_tokens"],
        completion_tokens=usage["output_tokens"],
        cache_read_input_tokens=usage.get("cached_tokens", 0),
    )
    assert price(model_id, usage) == pytest.approx(prompt_cost + completion_cost)


def test_pricing_does_not_import_litellm() -> None:
    """An API run prices every record; importing litellm for it took 2.7 s."""
    pytest.importorskip("litellm", reason="needs the litellm extra (its map file)")
    code = (
        "import sys; from hydragent.cost import price; "
        "assert price('gpt-4o-mini', {'input_tokens': 10, 'output_tokens': 1}) > 0; "
        "print('litellm' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_an_unknown_model_costs_none_not_zero(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("litellm", reason="needs the litellm extra")
    assert price("hydragent-no-such-model", {"input_tokens": 10, "output_tokens": 1}) is None
    assert price(None, {"input_tokens": 10}) is None
    assert "Provider List" not in capsys.readouterr().out
