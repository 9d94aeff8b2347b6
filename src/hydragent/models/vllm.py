"""VLLMModel: an in-process vLLM engine, on the current vLLM API.

- The engine is `vllm.LLM(model=model_id, **model_kwargs)`; its tokenizer renders the chat
  (tools included) and the prompt is sent as token ids, so BOS is never doubled.
- Every generation parameter goes into `SamplingParams`: the generation node's portable names
  (as the declaration at the end maps them: the thinking budget is `thinking_token_budget`),
  under the model's and the call's own keywords.
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
from hydragent.models.base import TOOL_ROLE_CONVERSIONS, Model, ModelRequest, in_dry_build
from hydragent.models.batching import MicroBatcher
from hydragent.models.chat_templates import resolve_template
from hydragent.models.errors import extra_problems, missing_extra
from hydragent.models.local import (
    LocalPrompt,
    count_tokens,
    finish_text,
    local_generation,
    local_prompt,
    missing_model_path,
    pick_template,
    read_tool_calls,
    stop_token_ids,
)
from hydragent.models.spec import BackendSpec, declare


def import_vllm() -> Any:
    """The vllm module (the only place hydragent imports it)."""
    try:
        return importlib.import_module("vllm")
    except ImportError as error:
        raise missing_extra(VLLMModel) from error


@dataclass
class _Request:
    prompt_ids: list[int]
    sampling_params: Any


class VLLMModel(Model):
    """A vLLM engine in this process; `model_kwargs` go to `vllm.LLM`, the rest to sampling."""

    loads_weights: ClassVar[bool] = True
    takes_seed: ClassVar[bool] = True  # SamplingParams(seed=...), per request
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

    def environment_problems(self) -> list[tuple[str, str]]:
        """The vllm extra (which also needs a GPU), and a local model folder that is missing."""
        return extra_problems(self) + missing_model_path(self.model_id)

    def request(self, req: ModelRequest) -> ChatMessage:
        prompt = local_prompt(self, req, self.tokenizer, self._template)
        request = _Request(
            prompt_ids=prompt.ids,
            sampling_params=self.sampling_params(prompt, req.grammar),
        )
        output = self._batcher.submit(request)
        completion = output.outputs[0]
        # vLLM already cut the text at a stop string (the grammar-free path); cut again after
        # the reasoning is split off, so a stop never ends up in the answer
        reasoning, content = finish_text(
            completion.text, prompt.thinking, prompt.stops, prompt.lstrip
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
        return read_tool_calls(self, message, req)

    def sampling_params(self, prompt: LocalPrompt, grammar: Grammar | None) -> Any:
        """`SamplingParams` for one request: the generation node under the model's and the
        call's keywords (local.py's token-limit rule gives `max_tokens`), stops and grammar."""
        settings = dict(prompt.settings)
        if prompt.max_tokens is not None:
            settings["max_tokens"] = prompt.max_tokens
        if prompt.stops:
            settings.setdefault("stop", prompt.stops)
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


BACKEND = declare(
    BackendSpec(
        key="vllm",
        model=VLLMModel,
        extra="vllm",
        modules=("vllm",),
        generation=local_generation(
            temperature="temperature",
            top_p="top_p",
            top_k="top_k",
            seed="seed",
            frequency_penalty="frequency_penalty",
            presence_penalty="presence_penalty",
            reasoning_tokens="thinking_token_budget",
        ),
        grammars=frozenset({"json_object", "json_schema", "regex", "choice"}),
        reasoning=True,
        helpers=frozenset({"chat_template"}),
    )
)
