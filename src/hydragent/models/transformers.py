"""TransformersModel: a Hugging Face causal LM run in-process, micro-batched across threads.

With no `model_id` it runs the bundled Gemma 3 270M (see bundled_gemma.py), so a fresh
install can run an experiment with no key and no network. Concurrent `generate` calls (the
runner's worker threads) are gathered into one left-padded `model.generate`; greedy results
are the same as running each call alone.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hydragent.grammar import Grammar
from hydragent.messages import ChatMessage, ChatMessageStreamDelta, MessageRole, TokenUsage
from hydragent.models.base import Model, StopScanner, trim_at_stop
from hydragent.models.batching import MicroBatcher
from hydragent.models.constrained import LOCAL_GRAMMARS, TorchGrammarProcessor, compile_grammar
from hydragent.models.local import (
    answer_opens_with_space,
    chat_messages,
    cut_at_stop_tokens,
    encode_prompt,
    pick_template,
    render_prompt,
    stop_token_ids,
    stops_for,
)


def _import_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as error:
        raise ImportError(
            f"TransformersModel needs the `transformers` extra ({error.name} is missing): "
            "pip install 'hydragent[transformers]'"
        ) from error
    return torch, transformers


@dataclass
class _Request:
    prompt_ids: list[int]
    settings: tuple[tuple[str, Any], ...]  # generation kwargs; only equal settings share a batch
    stop_sequences: tuple[str, ...]
    grammar: Grammar | None = None
    key: tuple[Any, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.key = (self.settings, self.stop_sequences)

    @property
    def seed(self) -> int | None:
        return dict(self.settings).get("seed")


@dataclass
class _Result:
    text: str
    input_tokens: int
    output_tokens: int


class TransformersModel(Model):
    """A local transformers model; the smolagents parameters, plus batching and grammars.

    `chat_template` names a declared template (plain, gemma, chatml) or is a Jinja string;
    when unset the tokenizer's own is used, and a tokenizer without one gets a fallback.
    `max_batch_size` and `batch_window_s` tune micro-batching (1 turns it off).
    """

    supported_grammars: ClassVar[frozenset[str]] = LOCAL_GRAMMARS
    loads_weights: ClassVar[bool] = True
    takes_seed: ClassVar[bool] = True  # torch's generator is seeded before each generate

    def __init__(
        self,
        model_id: str | None = None,
        device_map: str | None = None,
        torch_dtype: str | None = None,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        max_new_tokens: int = 4096,
        max_tokens: int | None = None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        chat_template: str | None = None,
        gguf_file: str | None = None,
        max_batch_size: int = 8,
        batch_window_s: float = 0.02,
        **kwargs: Any,
    ) -> None:
        torch, transformers = _import_torch_transformers()
        from hydragent.models.bundled_gemma import BUNDLED_NAME, bundled_gemma_path

        bundled = model_id in (None, BUNDLED_NAME)
        load_from = str(bundled_gemma_path()) if bundled else model_id
        super().__init__(model_id=BUNDLED_NAME if bundled else model_id, **kwargs)
        self.device_map = device_map or ("cuda" if torch.cuda.is_available() else "cpu")
        self.torch_dtype = torch_dtype
        self.trust_remote_code = trust_remote_code
        self.model_kwargs = dict(model_kwargs or {})
        self.max_new_tokens = max_tokens if max_tokens is not None else max_new_tokens
        self.apply_chat_template_kwargs = dict(apply_chat_template_kwargs or {})
        self.chat_template = chat_template
        self.gguf_file = gguf_file
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s

        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            load_from, gguf_file=gguf_file, trust_remote_code=trust_remote_code
        )
        load_kwargs: dict[str, Any] = {"device_map": self.device_map, **self.model_kwargs}
        if torch_dtype is not None:
            load_kwargs["dtype"] = _torch_dtype(torch, torch_dtype)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            load_from, gguf_file=gguf_file, trust_remote_code=trust_remote_code, **load_kwargs
        )
        self.model.eval()
        self._template = pick_template(self.tokenizer, chat_template, "plain", expected=bundled)
        self._lstrip = answer_opens_with_space(self._template)
        self._stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config.eos_token_id)
        pad = self.tokenizer.pad_token_id
        # a pad distinct from the stop tokens tells "finished, then padded" from "stopped"
        self._pad_id = pad if pad is not None and pad not in self._stop_ids else self._stop_ids[0]
        self._vocab_size = self.model.get_output_embeddings().weight.shape[0]
        self._batcher: MicroBatcher[_Request, _Result] = MicroBatcher(
            self._run_on_engine, max_batch_size=max_batch_size, window_s=batch_window_s
        )
        self._torch = torch
        self._engine_lock = threading.Lock()

    # --- the public calls ---------------------------------------------------------------

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        grammar: Grammar | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        request = self._build_request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        result = self._batcher.submit(request)
        message = ChatMessage(
            role=MessageRole.ASSISTANT,
            content=result.text,
            token_usage=TokenUsage(result.input_tokens, result.output_tokens),
        )
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
        """Streams one call on its own (not batched); stop strings are held back, then cut."""
        request = self._build_request(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, kwargs
        )
        streamer = _counting_streamer(self.tokenizer)
        generation = self._generate_kwargs([request])
        worker = threading.Thread(
            target=self._seeded_generate,
            args=(request.seed,),
            kwargs={**generation, "streamer": streamer},
            daemon=True,
        )
        worker.start()
        scanner = StopScanner(list(request.stop_sequences), lstrip=self._lstrip)
        for piece in streamer:
            text = scanner.feed(piece)
            if text:
                yield ChatMessageStreamDelta(content=text)
        tail = scanner.flush()
        if tail:
            yield ChatMessageStreamDelta(content=tail)
        worker.join()
        yield ChatMessageStreamDelta(
            content="", token_usage=TokenUsage(len(request.prompt_ids), streamer.generated)
        )

    # --- requests and batches -----------------------------------------------------------

    def _build_request(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None,
        response_format: dict[str, Any] | None,
        tools: list[Any] | None,
        grammar: Grammar | dict[str, Any] | None,
        call_kwargs: dict[str, Any],
    ) -> _Request:
        resolved = self.resolve_grammar(grammar, response_format)
        settings = self.completion_kwargs({}, call_kwargs)
        max_new = settings.pop("max_new_tokens", settings.pop("max_tokens", self.max_new_tokens))
        settings["max_new_tokens"] = max_new
        if "do_sample" not in settings:
            settings["do_sample"] = bool(settings.get("temperature"))
        prompt = render_prompt(
            self.tokenizer,
            chat_messages(messages, self.custom_role_conversions),
            self._template,
            tools,
            self.apply_chat_template_kwargs,
        )
        return _Request(
            prompt_ids=encode_prompt(self.tokenizer, prompt),
            settings=tuple(sorted(settings.items())),
            stop_sequences=tuple(stops_for(self._template, stop_sequences)),
            grammar=resolved,
        )

    def _run_on_engine(self, requests: Sequence[_Request]) -> list[_Result]:
        return engine_thread().submit(self._run_batch, requests).result()

    def _run_batch(self, requests: Sequence[_Request]) -> list[_Result]:
        """Split the window's requests into groups that can share a generate call."""
        results: dict[int, _Result] = {}
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.key, []).append(index)
        for indices in groups.values():
            group = [requests[i] for i in indices]
            results.update(zip(indices, self._generate_group(group), strict=True))
        return [results[i] for i in range(len(requests))]

    def _generate_kwargs(self, group: Sequence[_Request]) -> dict[str, Any]:
        torch = self._torch
        width = max(len(r.prompt_ids) for r in group)
        input_ids = torch.full((len(group), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(group), width), dtype=torch.long)
        for row, request in enumerate(group):  # left padding keeps every prompt's end aligned
            input_ids[row, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
            attention[row, width - len(request.prompt_ids) :] = 1
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(self.model.device),
            "attention_mask": attention.to(self.model.device),
            "eos_token_id": self._stop_ids or None,
            "pad_token_id": self._pad_id,
            **{k: v for k, v in group[0].settings if k != "seed"},
        }
        if group[0].stop_sequences:
            kwargs["stop_strings"] = list(group[0].stop_sequences)
            kwargs["tokenizer"] = self.tokenizer
        if any(r.grammar is not None for r in group):
            programs = [
                compile_grammar(self.tokenizer, r.grammar, self._vocab_size, self._stop_ids)
                if r.grammar is not None
                else None
                for r in group
            ]
            kwargs["logits_processor"] = [TorchGrammarProcessor(programs, self._vocab_size)]
        return kwargs

    def _seeded_generate(self, seed: int | None, **kwargs: Any) -> Any:
        """`model.generate`, after seeding torch's generator when the request has a seed, so
        that a sampled reply repeats (a batch shares one seed: it is part of `_Request.key`)."""
        if seed is not None:
            self._torch.manual_seed(seed)
        return self.model.generate(**kwargs)

    def _generate_group(self, group: Sequence[_Request]) -> list[_Result]:
        kwargs = self._generate_kwargs(group)
        width = kwargs["input_ids"].shape[1]
        with self._engine_lock, self._torch.inference_mode():
            output = self._seeded_generate(group[0].seed, **kwargs)
        results = []
        for row, request in enumerate(group):
            generated = _strip_trailing(output[row, width:].tolist(), self._pad_id)
            tokens, stopped = cut_at_stop_tokens(generated, self._stop_ids)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            text = trim_at_stop(text, request.stop_sequences) or ""
            results.append(
                _Result(
                    text=text.lstrip() if self._lstrip else text,
                    input_tokens=len(request.prompt_ids),
                    output_tokens=len(tokens) + int(stopped),
                )
            )
        return results

    def cleanup(self) -> None:
        """Drop the weights; on CUDA also return the cached memory to the driver."""
        self.model = None
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()


_ENGINE: ThreadPoolExecutor | None = None
_ENGINE_LOCK = threading.Lock()


def engine_thread() -> ThreadPoolExecutor:
    """The one thread on which every TransformersModel of this process runs its batches.

    torch's CPU worker threads (OpenMP) belong to the thread that calls into torch, and keep
    spinning for a while after each op. Batches led by whichever runner thread arrived first
    each woke another set of them, which fought over the cores: a batch of 8 ran 2-3x slower
    than on one thread (benchmarks/p5_local_batching.py). One thread for every model also
    keeps two local models (say, a judge) from oversubscribing the CPU between them.
    """
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hydragent-engine")
        return _ENGINE


def _torch_dtype(torch: Any, name: str) -> Any:
    if name == "auto":
        return name
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(
            f"unknown torch_dtype {name!r}; valid: auto, float32, float16, bfloat16 (or null)"
        )
    return dtype


def _strip_trailing(tokens: list[int], pad_id: int) -> list[int]:
    """Drop the padding a batch appends to rows that finished before the others."""
    end = len(tokens)
    while end and tokens[end - 1] == pad_id:
        end -= 1
    return tokens[:end]


def _counting_streamer(tokenizer: Any) -> Any:
    """A TextIteratorStreamer that also counts generated tokens, for real usage numbers."""
    from transformers import TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):
        def __init__(self) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self.generated = 0
            self._seen_prompt = False

        def put(self, value: Any) -> None:
            if self._seen_prompt:
                self.generated += int(value.numel())
            self._seen_prompt = True
            super().put(value)

    return CountingStreamer()
