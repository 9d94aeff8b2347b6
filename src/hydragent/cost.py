"""What a sample's tokens cost, in US dollars.

Prices come from LiteLLM's cost map, the copy bundled with the installed litellm, read as
data (never fetched, and litellm itself is not imported). A custom or local model that the map
does not know costs None (unknown), never 0, unless the user gives its `pricing`.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Pricing(BaseModel):
    """A price list for a model LiteLLM does not know, in dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    # Cached prompt tokens, when the provider bills them apart; else they cost as input.
    cached_input_per_mtok: float | None = Field(default=None, ge=0)


def given_pricing(node: Mapping[str, Any] | Pricing | None) -> Mapping[str, Any] | Pricing | None:
    """The `pricing` node as given, or None when it is unset: conf/config.yaml declares the
    node with its keys all null (so `pricing.input_per_mtok=1` works as typed), and that
    declared, empty node means "no pricing", exactly as `pricing: null` did."""
    if isinstance(node, Mapping) and all(v is None for v in node.values()):
        return None
    return node


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key) or 0
    return int(value) if isinstance(value, int | float) else 0


COST_MAP_FILE = "model_prices_and_context_window_backup.json"  # shipped inside litellm
LONG_PROMPT = 200_000  # the map's `*_above_200k_tokens` rates apply past this prompt size


@functools.cache
def _cost_map() -> dict[str, Any]:
    """LiteLLM's bundled price map, read as data: importing litellm takes seconds (2.7 s
    measured) and would put it on every API run's path. Empty without the litellm extra."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@functools.lru_cache(maxsize=1024)
def _entry(model_id: str) -> Mapping[str, Any] | None:
    """The map's entry for the id, else for the id without its provider prefix
    (`openai/gpt-4o-mini` is listed as `gpt-4o-mini`); None when it has no token prices.
    Cached: every record of a run asks for the same id."""
    prices = _cost_map()
    entry = prices.get(model_id)
    if entry is None and "/" in model_id:
        entry = prices.get(model_id.split("/", 1)[1])
    if not isinstance(entry, Mapping) or "input_cost_per_token" not in entry:
        return None
    return entry


def price(
    model_id: str | None,
    usage: Mapping[str, Any] | None,
    pricing: Mapping[str, Any] | Pricing | None = None,
) -> float | None:
    """Dollars for `usage` ({input_tokens, output_tokens, cached_tokens?}) on `model_id`.

    `pricing` wins over LiteLLM's map. None when the price is unknown: no pricing given and
    LiteLLM (or the model in its map) missing. Reasoning tokens are part of output_tokens
    as the providers report them, so they are not added again.
    """
    usage = usage or {}
    prompt = _tokens(usage, "input_tokens")
    completion = _tokens(usage, "output_tokens")
    cached = min(_tokens(usage, "cached_tokens"), prompt)
    if pricing is not None:
        plan = pricing if isinstance(pricing, Pricing) else Pricing.model_validate(dict(pricing))
        cached_rate = (
            plan.cached_input_per_mtok
            if plan.cached_input_per_mtok is not None
            else plan.input_per_mtok
        )
        dollars = (
            (prompt - cached) * plan.input_per_mtok
            + cached * cached_rate
            + completion * plan.output_per_mtok
        )
        return dollars / 1e6
    entry = _entry(str(model_id)) if model_id else None
    if entry is None:
        return None
    return _map_price(entry, prompt, completion, cached)


def _map_price(entry: Mapping[str, Any], prompt: int, completion: int, cached: int) -> float:
    """Dollars at the entry's per-token rates (its long-prompt rates past LONG_PROMPT)."""
    suffix = "_above_200k_tokens" if prompt > LONG_PROMPT else ""

    def rate(name: str, fallback: float = 0.0) -> float:
        value = entry.get(name + suffix, entry.get(name))
        return float(value) if isinstance(value, int | float) else fallback

    input_rate = rate("input_cost_per_token")
    return (
        (prompt - cached) * input_rate
        + cached * rate("cache_read_input_token_cost", input_rate)
        + completion * rate("output_cost_per_token")
    )
