"""VLLMModel: an in-process vLLM engine, on the current vLLM API.

- The engine is `vllm.LLM(model=model_id, **model_kwargs)`; its tokenizer renders the chat
  (tools included) and the prompt is sent as token ids, so BOS is never doubled.
- Every generation parameter goes into `SamplingParams`: the generation node's portable names
  (max_tokens, temperature, top_p, top_k, seed, frequency/presence penalties, and the thinking
  budget as `thinking_token_budget`), then the model's and the call's own keywords.
  `grammar=` becomes `SamplingParams(structured_outputs=StructuredOutputsParams(...))`.
- Concurrent calls from the runner's threads are micro-batched into one `LLM.generate`,
  which is where vLLM's continuous batching pays off.
- The engine starts in `__init__` (as in smolagents), except under `dry_build()`.

`import_vllm` is the one seam to the library: tests hand in a small fake module there.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hydragent.grammar import Grammar
from hydragent.messages import ChatMessage, MessageRole, TokenUsage
from hydragent.models.base import (
    TOOL_ROLE_CONVERSIONS,
    Model,
    ModelRequest,
    apply_generation,
    in_dry_build,
)
from hydragent.models.batching import MicroBatcher
from hydragent.models.chat_templates import resolve_template
from hydragent.models.local import (
    answer_opens_with_space,
    count_tokens,
    encode_prompt,
    finish_text,
    locally_sent,
    missing_extra,
    missing_model_path,
    opens_thinking,
    pick_template,
    render_prompt,
    stop_token_ids,
    stops_for,
    template_messages,
    template_source,
    thinking_kwargs,
)

#: generation node name -> SamplingParams field.
GENERATION_NAMES = {
    **{
        name: name
        for name in (
            "max_tokens",
            "temperature",
            "top_p",
            "top_k",
            "seed",
            "frequency_penalty",
            "presence_penalty",
        )
    },
    "reasoning_tokens": "thinking_token_budget",
}


def import_vllm() -> Any:
    """The vllm module (the only place hydragent imports it)."""
    try:
        return importlib.import_module("vllm")
    except ImportError as error:
        raise ImportError(
            "VLLMModel needs the `vllm` extra (and a GPU): pip install 'hydragent[vllm]'"
        ) from error


@dataclass
class _Request:
    prompt_ids: list[int]
    sampling_params: Any


class VLLMModel(Model):
    """A vLLM engine in this process; `model_kwargs` go to `vllm.LLM`, the rest to sampling."""

    supported_grammars: ClassVar[frozenset[str]] = frozenset(
        {"json_object", "json_schema", "regex", "choice"}
    )
    loads_weights: ClassVar[bool] = True
    takes_seed: ClassVar[bool] = True  # SamplingParams(seed=...), per request
    returns_reasoning: ClassVar[bool] = True  # <think> blocks are split from the answer
    wire_roles: ClassVar[dict[str, str] | None] = TOOL_ROLE_CONVERSIONS

    def __init__(
        self,
        model_id: str,
        model_kwargs: dict[str, Any] | None = None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        chat_template: str | None = None,
        max_batch_size: int = 256,
        batch_window_s: float = 0.02,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("flatten_messages_as_text", True)  # text prompts
        super().__init__(model_id=model_id, **kwargs)
        self.model_kwargs = dict(model_kwargs or {})
        self.apply_chat_template_kwargs = dict(apply_chat_template_kwargs or {})
        self.chat_template = chat_template
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self._template = resolve_template(chat_template)  # fails early on an unknown name
        self.llm: Any = None
        self.tokenizer: Any = None
        if not in_dry_build():
            self._load()

    def _load(self) -> None:
        self._vllm = import_vllm()
        self.llm = self._vllm.LLM(model=self.model_id, **self.model_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self._template = pick_template(self.tokenizer, self.chat_template, "plain")
        self._stop_ids = stop_token_ids(self.tokenizer)
        self._batcher: MicroBatcher[_Request, Any] = MicroBatcher(
            self._run_batch, max_batch_size=self.max_batch_size, window_s=self.batch_window_s
        )

    def sent_generation(self) -> frozenset[str]:
        return locally_sent(GENERATION_NAMES)

    def environment_problems(self) -> list[tuple[str, str]]:
        """The vllm extra (which also needs a GPU), and a local model folder that is missing."""
        problems = missing_extra(type(self).__name__, "vllm", "vllm")
        return problems + missing_model_path(self.model_id)

    def request(self, req: ModelRequest) -> ChatMessage:
        settings = self.settings(req)
        call_template_kwargs = settings.pop("chat_template_kwargs", None) or {}
        template_kwargs = {
            **thinking_kwargs(
                req.generation,
                template_source(self.tokenizer, self._template),
                type(self).__name__,
            ),
            **self.apply_chat_template_kwargs,
            **call_template_kwargs,
        }
        prompt = render_prompt(
            self.tokenizer,
            template_messages(req.messages, type(self).__name__),
            self._template,
            req.tools,
            template_kwargs,
        )
        stops = stops_for(self._template, req.stop_sequences)
        request = _Request(
            prompt_ids=encode_prompt(self.tokenizer, prompt),
            sampling_params=self.sampling_params(settings, req.generation, stops, req.grammar),
        )
        output = self._batcher.submit(request)
        completion = output.outputs[0]
        # vLLM already cut the text at a stop string (the grammar-free path); cut again after
        # the reasoning is split off, so a stop never ends up in the answer
        reasoning, content = finish_text(
            completion.text, opens_thinking(prompt), stops, answer_opens_with_space(self._template)
        )
        message = ChatMessage(
            role=MessageRole.ASSISTANT,
            content=content,
            reasoning_content=reasoning,
            raw=output,
            token_usage=TokenUsage(
                len(output.prompt_token_ids),
                len(completion.token_ids),
                reasoning_tokens=count_tokens(self.tokenizer, reasoning),
            ),
        )
        return self.parse_tool_calls(message) if req.tools else message

    def sampling_params(
        self,
        settings: dict[str, Any],
        generation: dict[str, Any],
        stops: list[str],
        grammar: Grammar | None,
    ) -> Any:
        """`SamplingParams` for one request: the generation node, under the model's and the
        call's keywords (`max_new_tokens` is read as `max_tokens`), stops and grammar."""
        settings = dict(settings)
        if "max_new_tokens" in settings:
            settings["max_tokens"] = settings.pop("max_new_tokens")
        if stops:
            settings.setdefault("stop", stops)
        apply_generation(settings, generation, GENERATION_NAMES)
        settings.setdefault("stop_token_ids", self._stop_ids)
        if grammar is not None:
            settings["structured_outputs"] = self.structured_outputs(grammar)
        return self._vllm.SamplingParams(**settings)

    def structured_outputs(self, grammar: Grammar) -> Any:
        """vLLM's StructuredOutputsParams for a grammar (the json/regex/choice fields)."""
        fields: dict[str, Any] = {
            "json_object": {"json_object": True},
            "json_schema": {"json": grammar.schema},
            "regex": {"regex": grammar.pattern},
            "choice": {"choice": list(grammar.choices or [])},
        }[grammar.type]
        return self._vllm.sampling_params.StructuredOutputsParams(**fields)

    def _run_batch(self, requests: Sequence[_Request]) -> list[Any]:
        prompts = [{"prompt_token_ids": r.prompt_ids} for r in requests]
        params = [r.sampling_params for r in requests]
        return list(self.llm.generate(prompts, sampling_params=params, use_tqdm=False))

    def cleanup(self) -> None:
        """Drop the engine and give its GPU memory back (vLLM's own cleanup when present)."""
        if self.llm is None:
            return
        self.llm = None
        gc.collect()
        with contextlib.suppress(ImportError):
            parallel_state = importlib.import_module("vllm.distributed.parallel_state")
            parallel_state.cleanup_dist_env_and_memory()
        with contextlib.suppress(ImportError):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
