"""VLLMServerModel: a `vllm serve` endpoint, with vLLM's own structured-output request fields.

vLLM >= 0.12 takes `structured_outputs: {json | regex | choice | grammar | json_object}` in the
request body; older servers took `guided_json`, `guided_regex`, `guided_choice` and
`guided_grammar` (removed in 0.12). `legacy_guided_fields=True` sends the old names.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hydragent.grammar import Grammar
from hydragent.models.base import ModelRequest
from hydragent.models.openai import OpenAIServerModel


class VLLMServerModel(OpenAIServerModel):
    """The OpenAI backend preset for vLLM's OpenAI-compatible server (a local endpoint: it
    needs no key)."""

    supported_grammars: ClassVar[frozenset[str]] = frozenset(
        {"json_object", "json_schema", "regex", "choice"}
    )

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

    def sent_generation(self) -> frozenset[str]:
        return super().sent_generation() | {"top_k"}

    def wire_request(self, req: ModelRequest) -> dict[str, Any]:
        """The body; the generation node's `top_k` goes in `extra_body`, vLLM's home for it."""
        body = super().wire_request(req)
        top_k = req.generation.get("top_k")
        if top_k is not None:
            body["extra_body"] = {"top_k": top_k, **(body.get("extra_body") or {})}
        return body
