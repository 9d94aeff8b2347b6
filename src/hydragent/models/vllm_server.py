"""VLLMServerModel: a `vllm serve` endpoint, with vLLM's own structured-output request fields.

vLLM >= 0.12 takes `structured_outputs: {json | regex | choice | grammar | json_object}` in the
request body; older servers took `guided_json`, `guided_regex`, `guided_choice` and
`guided_grammar` (removed in 0.12). `legacy_guided_fields=True` sends the old names. The
generation node's `top_k` goes in `extra_body`, vLLM's home for it.
"""

from __future__ import annotations

from typing import Any

from hydragent.grammar import Grammar
from hydragent.models.chat_completions import chat_generation
from hydragent.models.openai import OpenAIServerModel
from hydragent.models.spec import BackendSpec, Field, GenerationMap, declare


class VLLMServerModel(OpenAIServerModel):
    """The OpenAI backend preset for vLLM's OpenAI-compatible server (a local endpoint: it
    needs no key)."""

    def __init__(
        self,
        model_id: str,
        api_base: str | None = "http://127.0.0.1:8000/v1",
        api_key: str | None = "EMPTY",
        legacy_guided_fields: bool = False,
        **kwargs: Any,
    ) -> None:
        self.legacy_guided_fields = legacy_guided_fields
        super().__init__(model_id=model_id, api_base=api_base, api_key=api_key, **kwargs)

    def grammar_request(self, grammar: Grammar) -> dict[str, Any]:
        """`extra_body` fields: the openai client merges them into the JSON body."""
        constraint: dict[str, Any] = {
            "json_object": {"json_object": True},
            "json_schema": {"json": grammar.schema},
            "regex": {"regex": grammar.pattern},
            "choice": {"choice": grammar.choices},
        }[grammar.type]
        if self.legacy_guided_fields:
            if grammar.type == "json_object":
                return {"response_format": {"type": "json_object"}}
            ((key, value),) = constraint.items()
            return {"extra_body": {f"guided_{key}": value}}
        return {"extra_body": {"structured_outputs": constraint}}


def server_generation(model: VLLMServerModel) -> GenerationMap:
    return {**chat_generation(model), "top_k": Field("extra_body.top_k")}


BACKEND = declare(
    BackendSpec(
        key="vllm_server",
        model=VLLMServerModel,
        extra="openai",
        modules=("openai",),
        generation=server_generation,
        grammars=frozenset({"json_object", "json_schema", "regex", "choice"}),
        native_tools=True,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"retry"}),
        client="openai:OpenAI",
    )
)
