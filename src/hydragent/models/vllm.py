"""VLLMModel: an in-process vLLM engine, on the current vLLM API.

- The engine is `vllm.LLM(model=model_id, **model_kwargs)`; its tokenizer renders the chat
  (tools included) and the prompt is sent as token ids, so BOS is never doubled.
- Every generation parameter goes into `SamplingParams`; `grammar=` becomes
  `SamplingParams(structured_outputs=StructuredOutputsParams(...))`.
- Concurrent calls from the runner's threads are micro-batched into one `LLM.generate`,
  which is where vLLM's continuous batching pays off.

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
from hydragent.models.base import Model
from hydragent.models.batching import MicroBatcher
from hydragent.models.local import (
    answer_opens_with_space,
    chat_messages,
    encode_prompt,
    pick_template,
    render_prompt,
    stop_token_ids,
    stops_for,
)


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
        super().__init__(model_id=model_id, **kwargs)
        self.model_kwargs = dict(model_kwargs or {})
        self.apply_chat_template_kwargs = dict(apply_chat_template_kwargs or {})
        self.chat_template = chat_template
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self._vllm = import_vllm()
        self.llm = self._vllm.LLM(model=model_id, **self.model_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self._template = pick_template(self.tokenizer, chat_template, "plain")
        self._stop_ids = stop_token_ids(self.tokenizer)
        self._batcher: MicroBatcher[_Request, Any] = MicroBatcher(
            self._run_batch, max_batch_size=max_batch_size, window_s=batch_window_s
        )

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        prompt = render_prompt(
            self.tokenizer,
            chat_messages(messages, self.custom_role_conversions),
            self._template,
            tools_to_call_from,
            self.apply_chat_template_kwargs,
        )
        request = _Request(
            prompt_ids=encode_prompt(self.tokenizer, prompt),
            sampling_params=self.sampling_params(
                stop_sequences, self.resolve_grammar(grammar, response_format), kwargs
            ),
        )
        output = self._batcher.submit(request)
        completion = output.outputs[0]
        message = ChatMessage(
            role=MessageRole.ASSISTANT,
            content=completion.text.lstrip()
            if answer_opens_with_space(self._template)
            else completion.text,
            raw=output,
            token_usage=TokenUsage(len(output.prompt_token_ids), len(completion.token_ids)),
        )
        return self.parse_tool_calls(message) if tools_to_call_from else message

    def sampling_params(
        self, stop_sequences: list[str] | None, grammar: Grammar | None, call_kwargs: dict[str, Any]
    ) -> Any:
        """`SamplingParams` for one request: instance and call kwargs, stops and grammar."""
        stops = stops_for(self._template, stop_sequences)
        settings = self.completion_kwargs({"stop": stops or None}, call_kwargs)
        if "max_new_tokens" in settings:
            settings["max_tokens"] = settings.pop("max_new_tokens")
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
        self.llm = None
        gc.collect()
        with contextlib.suppress(ImportError):
            parallel_state = importlib.import_module("vllm.distributed.parallel_state")
            parallel_state.cleanup_dist_env_and_memory()
        with contextlib.suppress(ImportError):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
