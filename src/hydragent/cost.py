"""What a sample's tokens cost, in US dollars.

Prices come from LiteLLM's cost map, the copy bundled with the installed litellm
(LITELLM_LOCAL_MODEL_COST_MAP=True, so it is never fetched). litellm is imported on the first
call only: `import hydragent` stays light. A custom or local model that LiteLLM does not know
costs None (unknown), never 0, unless the user gives its `pricing`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Pricing(BaseModel):
    """A price list for a model LiteLLM does not know, in dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    # Cached prompt tokens, when the provider bills them apart; else they cost as input.
    cached_input_per_mtok: float | None = Field(default=None, ge=0)


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key) or 0
    return int(value) if isinstance(value, int | float) else 0


@functools.cache
def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        return None
    litellm.suppress_debug_info = True  # unknown models otherwise print a provider list
    return litellm


@functools.lru_cache(maxsize=256)
def _known(model_id: str) -> bool:
    litellm = _litellm()
    if litellm is None:
        return False
    try:
        litellm.cost_per_token(model=model_id, prompt_tokens=1, completion_tokens=1)
    except Exception:  # litellm raises several types (BadRequestError, NotFoundError...)
        return False
    return True


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
    if not model_id or not _known(str(model_id)):
        return None
    prompt_cost, completion_cost = _litellm().cost_per_token(
        model=str(model_id),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_input_tokens=cached,
    )
    return float(prompt_cost) + float(completion_cost)
