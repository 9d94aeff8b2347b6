"""The local engines' one token-limit rule (models/local.py), the same for Transformers, MLX
and vLLM: a call's (or the model's extra) `max_new_tokens`, else its `max_tokens`, else the
model's own constructor limit, else `generation.max_tokens`, else the engine's default."""

from __future__ import annotations

from typing import Any

import pytest

from hydragent.models import Model
from hydragent.models.local import local_settings


class Engine(Model):
    """A model with no engine: only its settings are read."""


@pytest.mark.parametrize(
    ("call", "own", "generation", "expected"),
    [
        ({"max_new_tokens": 5, "max_tokens": 9}, 50, 100, 5),  # both names: max_new_tokens
        ({"max_tokens": 9}, 50, 100, 9),  # a call's keyword beats the model and the node
        ({}, 50, 100, 50),  # the model's own limit beats the node
        ({}, None, 100, 100),
        ({}, None, None, 4096),  # the engine's default
    ],
)
def test_one_token_limit_rule(
    call: dict[str, Any], own: Any, generation: Any, expected: int
) -> None:
    model = Engine(generation={"max_tokens": generation} if generation else None)
    req = model.build_request([{"role": "user", "content": "hi"}], kwargs=call)
    settings, limit, _ = local_settings(model, req, own, 4096)
    assert limit == expected
    assert "max_tokens" not in settings and "max_new_tokens" not in settings


def test_a_model_keyword_beats_a_call_keyword_as_everywhere() -> None:
    model = Engine(max_new_tokens=7)  # an extra constructor keyword, sent with every call
    req = model.build_request([{"role": "user", "content": "hi"}], kwargs={"max_new_tokens": 3})
    assert local_settings(model, req, None, 4096)[1] == 7
