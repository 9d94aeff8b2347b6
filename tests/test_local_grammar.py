"""grammar= on local models: a tiny random-weight model still answers inside the grammar.

Random weights would write anything; these tests prove the constraint, not the model, decides
the shape of the answer, on both Transformers and MLX, alone and inside a micro-batch.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import jsonschema
import pytest

from hydragent.grammar import Grammar
from tiny_models import build_tiny_llama

QUESTION = [{"role": "user", "content": "Describe the weather as JSON."}]
SCHEMA = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "label": {"enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["ok", "label", "count"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-grammar"))


@pytest.fixture(scope="module", params=["transformers", "mlx"])
def model(request: pytest.FixtureRequest, tiny_dir: Path):
    if request.param == "transformers":
        pytest.importorskip("transformers")
        from hydragent.models import TransformersModel

        return TransformersModel(model_id=str(tiny_dir), max_new_tokens=60)
    pytest.importorskip("mlx_lm")
    from hydragent.models import MLXModel

    return MLXModel(model_id=str(tiny_dir), max_tokens=60)


def test_unconstrained_output_is_not_json(model) -> None:
    """The control: without a grammar this model does not happen to write the schema."""
    with pytest.raises(ValueError):
        json.loads(model.generate(QUESTION).content)


def test_json_schema_output_parses_and_validates(model) -> None:
    reply = model.generate(QUESTION, grammar=Grammar(type="json_schema", schema=SCHEMA))
    jsonschema.validate(json.loads(reply.content), SCHEMA)


def test_response_format_json_schema_is_enforced_too(model) -> None:
    response_format = Grammar(type="json_schema", schema=SCHEMA).to_response_format()
    reply = model.generate(QUESTION, response_format=response_format)
    jsonschema.validate(json.loads(reply.content), SCHEMA)


def test_choice_returns_one_of_the_choices(model) -> None:
    choices = ["yes", "no", "maybe later"]
    reply = model.generate(QUESTION, grammar={"type": "choice", "choices": choices})
    assert reply.content in choices


def test_regex_output_matches_the_pattern(model) -> None:
    pattern = r"[A-Z][a-z]{2,4}-[0-9]{3}"
    reply = model.generate(QUESTION, grammar={"type": "regex", "pattern": pattern})
    assert re.fullmatch(pattern, reply.content)


def test_mixed_grammars_share_one_batch_and_each_row_keeps_its_own(tiny_dir: Path) -> None:
    pytest.importorskip("transformers")
    from hydragent.models import TransformersModel

    calls = [
        {"grammar": {"type": "json_schema", "schema": SCHEMA}},
        {"grammar": {"type": "choice", "choices": ["alpha", "beta"]}},
        {"grammar": {"type": "regex", "pattern": "[0-9]{4}"}},
        {},
    ]
    alone = TransformersModel(model_id=str(tiny_dir), max_new_tokens=60, max_batch_size=1)
    expected = [alone.generate(QUESTION, **call).content for call in calls]

    batched = TransformersModel(model_id=str(tiny_dir), max_new_tokens=60, batch_window_s=0.5)
    results: list = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def ask(index: int) -> None:
        barrier.wait()
        results[index] = batched.generate(QUESTION, **calls[index]).content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert max(batched._batcher.batch_sizes) == len(calls)
    assert results == expected
    jsonschema.validate(json.loads(results[0]), SCHEMA)
    assert results[1] in ("alpha", "beta")
    assert re.fullmatch("[0-9]{4}", results[2])
