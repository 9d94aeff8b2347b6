"""MLXModel: an mlx-lm model in-process (Apple silicon, or Linux CPU with `mlx[cpu]`).

Prompts, stop handling and grammars are the same code as TransformersModel's (local.py,
constrained.py); only the decoding loop is MLX's. Calls are serialised: MLX evaluates one
stream at a time, so concurrent runner threads take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any, ClassVar

from hydragent.grammar import Grammar
from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    MessageRole,
    TokenUsage,
    agglomerate_stream_deltas,
)
from hydragent.models.base import Model, StopScanner
from hydragent.models.constrained import LOCAL_GRAMMARS, MlxGrammarProcessor, compile_grammar
from hydragent.models.local import (
    answer_opens_with_space,
    chat_messages,
    encode_prompt,
    pick_template,
    render_prompt,
    stop_token_ids,
    stops_for,
)

#: call keywords that shape sampling; everything else reaches stream_generate unchanged.
_SAMPLER_KEYS = ("temperature", "temp", "top_p", "min_p", "top_k")


class MLXModel(Model):
    """The smolagents MLXModel parameters; `max_tokens` is also accepted per call."""

    supported_grammars: ClassVar[frozenset[str]] = LOCAL_GRAMMARS
    loads_weights: ClassVar[bool] = True
    takes_seed: ClassVar[bool] = True  # MLX's generator is seeded before each generation

    def __init__(
        self,
        model_id: str,
        trust_remote_code: bool = False,
        load_kwargs: dict[str, Any] | None = None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        max_tokens: int = 4096,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            import mlx_lm
        except ImportError as error:
            raise ImportError(
                "MLXModel needs the `mlx` extra: pip install 'hydragent[mlx]' (mlx[cpu] on Linux)"
            ) from error
        super().__init__(model_id=model_id, **kwargs)
        self.trust_remote_code = trust_remote_code
        self.load_kwargs = dict(load_kwargs or {})
        self.apply_chat_template_kwargs = dict(apply_chat_template_kwargs or {})
        self.max_tokens = max_tokens
        self.chat_template = chat_template
        tokenizer_config = {
            "trust_remote_code": trust_remote_code,
            **self.load_kwargs.pop("tokenizer_config", {}),
        }
        self.model, self.tokenizer = mlx_lm.load(
            model_id, tokenizer_config=tokenizer_config, **self.load_kwargs
        )
        self.hf_tokenizer = getattr(self.tokenizer, "_tokenizer", self.tokenizer)
        self._template = pick_template(self.hf_tokenizer, chat_template, "plain")
        self._stop_ids = stop_token_ids(self.hf_tokenizer, sorted(self.tokenizer.eos_token_ids))
        self.tokenizer.eos_token_ids = set(self._stop_ids)
        args = getattr(self.model, "args", None)
        self._vocab_size = getattr(args, "vocab_size", None) or len(self.hf_tokenizer)
        self._lock = threading.Lock()

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        deltas = self.generate_stream(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, **kwargs
        )
        message = agglomerate_stream_deltas(deltas, role=MessageRole.ASSISTANT)
        message.content = message.content or ""
        return self.parse_tool_calls(message) if tools_to_call_from else message

    def generate_stream(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Generator[ChatMessageStreamDelta, None, None]:
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        resolved = self.resolve_grammar(grammar, response_format)
        settings = self.completion_kwargs({}, kwargs)
        max_tokens = settings.pop("max_tokens", settings.pop("max_new_tokens", self.max_tokens))
        seed = settings.pop("seed", None)
        sampling = {key: settings.pop(key) for key in _SAMPLER_KEYS if key in settings}
        temperature = sampling.pop("temperature", sampling.pop("temp", 0.0))
        prompt = render_prompt(
            self.hf_tokenizer,
            chat_messages(messages, self.custom_role_conversions),
            self._template,
            tools_to_call_from,
            self.apply_chat_template_kwargs,
        )
        prompt_ids = encode_prompt(self.hf_tokenizer, prompt)
        processors = []
        if resolved is not None:
            program = compile_grammar(self.hf_tokenizer, resolved, self._vocab_size, self._stop_ids)
            processors.append(MlxGrammarProcessor(program, self._vocab_size))

        scanner = StopScanner(
            stops_for(self._template, stop_sequences),
            lstrip=answer_opens_with_space(self._template),
        )
        generated = 0
        with self._lock:
            if seed is not None:
                mx.random.seed(seed)
            for response in stream_generate(
                self.model,
                self.tokenizer,
                prompt_ids,
                max_tokens=max_tokens,
                sampler=make_sampler(temp=temperature, **sampling),
                logits_processors=processors,
                **settings,
            ):
                generated = response.generation_tokens
                text = scanner.feed(response.text)
                if text:
                    yield ChatMessageStreamDelta(content=text)
                if scanner.stopped:
                    break
        tail = scanner.flush()
        if tail:
            yield ChatMessageStreamDelta(content=tail)
        yield ChatMessageStreamDelta(content="", token_usage=TokenUsage(len(prompt_ids), generated))

    def cleanup(self) -> None:
        """Drop the weights and MLX's buffer cache."""
        import mlx.core as mx

        self.model = None
        mx.clear_cache()
