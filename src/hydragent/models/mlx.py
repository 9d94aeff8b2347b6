"""MLXModel: an mlx-lm model in-process (Apple silicon, or Linux CPU with `mlx[cpu]`).

Prompts, stop handling, reasoning and grammars are the same code as TransformersModel's
(local.py, constrained.py); only the decoding loop is MLX's. Calls are serialised: MLX
evaluates one stream at a time, so concurrent runner threads take turns. Weights load in
`__init__` (as in smolagents), except under `dry_build()`.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any, ClassVar

from hydragent import progress
from hydragent.messages import ChatMessage, ChatMessageStreamDelta, TokenUsage
from hydragent.messages import agglomerate_stream_deltas as agglomerate
from hydragent.models.base import TOOL_ROLE_CONVERSIONS, Model, ModelRequest, in_dry_build
from hydragent.models.chat_templates import resolve_template
from hydragent.models.constrained import LOCAL_GRAMMARS, MlxGrammarProcessor, compile_grammar
from hydragent.models.errors import extra_problems, missing_extra
from hydragent.models.local import (
    TextStream,
    count_tokens,
    local_generation,
    local_prompt,
    missing_model_path,
    pick_template,
    read_tool_calls,
    stop_token_ids,
)
from hydragent.models.spec import BackendSpec, declare

#: call keywords that shape sampling; everything else reaches stream_generate unchanged.
_SAMPLER_KEYS = ("temperature", "temp", "top_p", "min_p", "top_k")
DEFAULT_MAX_TOKENS = 4096


class MLXModel(Model):
    """The smolagents MLXModel parameters; `max_tokens` (or `max_new_tokens`) is also
    accepted per call, and wins over the generation node's (local.py's one rule)."""

    loads_weights: ClassVar[bool] = True
    takes_seed: ClassVar[bool] = True  # MLX's generator is seeded before each generation
    wire_roles: ClassVar[dict[str, str] | None] = TOOL_ROLE_CONVERSIONS

    def __init__(
        self,
        model_id: str,
        trust_remote_code: bool = False,
        load_kwargs: dict[str, Any] | None = None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("flatten_messages_as_text", True)  # smolagents: text only
        super().__init__(model_id=model_id, **kwargs)
        self.trust_remote_code = trust_remote_code
        self.load_kwargs = dict(load_kwargs or {})
        self.apply_chat_template_kwargs = dict(apply_chat_template_kwargs or {})
        self.max_tokens = max_tokens
        self.chat_template = chat_template
        self._template = resolve_template(chat_template)  # fails early on an unknown name
        self.model: Any = None
        self.tokenizer: Any = None
        if not in_dry_build():
            self._load()

    def _load(self) -> None:
        try:
            import mlx_lm
        except ImportError as error:
            raise missing_extra(self) from error
        load_kwargs = dict(self.load_kwargs)
        tokenizer_config = {
            "trust_remote_code": self.trust_remote_code,
            **load_kwargs.pop("tokenizer_config", {}),
        }
        self.model, self.tokenizer = mlx_lm.load(
            self.model_id, tokenizer_config=tokenizer_config, **load_kwargs
        )
        self.hf_tokenizer = getattr(self.tokenizer, "_tokenizer", self.tokenizer)
        self._template = pick_template(self.hf_tokenizer, self.chat_template, "plain")
        self._stop_ids = stop_token_ids(self.hf_tokenizer, sorted(self.tokenizer.eos_token_ids))
        self.tokenizer.eos_token_ids = set(self._stop_ids)
        args = getattr(self.model, "args", None)
        self._vocab_size = getattr(args, "vocab_size", None) or len(self.hf_tokenizer)
        self._lock = threading.Lock()

    def environment_problems(self) -> list[tuple[str, str]]:
        """The mlx extra, and a local model folder that is missing."""
        return extra_problems(self) + missing_model_path(self.model_id)

    def request(self, req: ModelRequest) -> ChatMessage:
        message = agglomerate(self.request_stream(req))
        message.content = message.content or ""
        return read_tool_calls(self, message, req)

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta, None, None]:
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        prompt = local_prompt(
            self, req, self.hf_tokenizer, self._template, self.max_tokens, DEFAULT_MAX_TOKENS
        )
        settings = prompt.settings
        seed = settings.pop("seed", None)
        sampling = {key: settings.pop(key) for key in _SAMPLER_KEYS if key in settings}
        temperature = sampling.pop("temperature", sampling.pop("temp", 0.0))
        processors = []
        if req.grammar is not None:
            program = compile_grammar(
                self.hf_tokenizer, req.grammar, self._vocab_size, self._stop_ids
            )
            processors.append(MlxGrammarProcessor(program, self._vocab_size))
        stream = TextStream(prompt.thinking, prompt.stops, lstrip=prompt.lstrip)
        generated = 0
        reasoning: list[str] = []
        with self._lock:
            if seed is not None:
                mx.random.seed(seed)
            for response in stream_generate(
                self.model,
                self.tokenizer,
                prompt.ids,
                max_tokens=prompt.max_tokens,
                sampler=make_sampler(temp=temperature, **sampling),
                logits_processors=processors,
                **settings,
            ):
                generated = response.generation_tokens
                progress.generated(1)
                for delta in stream.feed(response.text):
                    reasoning.append(delta.reasoning_content or "")
                    yield delta
                if stream.stopped:
                    break
        for delta in stream.flush():
            reasoning.append(delta.reasoning_content or "")
            yield delta
        usage = TokenUsage(
            len(prompt.ids),
            generated,
            reasoning_tokens=count_tokens(self.hf_tokenizer, "".join(reasoning)),
        )
        yield ChatMessageStreamDelta(content="", token_usage=usage)

    def cleanup(self) -> None:
        """Drop the weights and MLX's buffer cache."""
        if self.model is None:
            return
        import mlx.core as mx

        self.model = None
        mx.clear_cache()


BACKEND = declare(
    BackendSpec(
        key="mlx",
        model=MLXModel,
        extra="mlx",
        modules=("mlx", "mlx_lm"),
        generation=local_generation(
            temperature="temperature", top_p="top_p", top_k="top_k", seed="seed"
        ),
        grammars=LOCAL_GRAMMARS,
        streaming=True,
        reasoning=True,
        helpers=frozenset({"chat_template"}),
    )
)
