"""TransformersModel's engine side: device and dtype checks, the one engine thread, and the
batch bookkeeping (requests, results, padding, progress, token counting for streams).

Kept apart from transformers.py so that the backend module reads as the request path.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydragent import progress
from hydragent.grammar import Grammar
from hydragent.messages.images import load_pil_image
from hydragent.models.errors import missing_extra

TORCH_DTYPES = ("auto", "float32", "float16", "bfloat16", "float64")
#: device_map strategies (accelerate's) and devices; a device may carry an index (cuda:1), and
#: a dict places modules one by one.
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
DEVICES = ("cpu", "cuda", "mps", "xpu", "npu", "meta")
_DEVICE = re.compile(rf"^({'|'.join(DEVICES)})(:\d+)?$")


def device_map_problem(device_map: Any) -> str | None:
    """Why `device_map` cannot be placed, in one line; None when its form is valid."""
    if device_map is None or isinstance(device_map, dict):
        return None
    if isinstance(device_map, int) and not isinstance(device_map, bool) and device_map >= 0:
        return None
    if isinstance(device_map, str) and (
        device_map in DEVICE_MAP_STRATEGIES or _DEVICE.match(device_map)
    ):
        return None
    return (
        f"unknown device_map {device_map!r}; valid: {', '.join(DEVICE_MAP_STRATEGIES)}, a "
        f"device ({', '.join(DEVICES)}, with an index such as cuda:1), a GPU number, or a "
        "dict of module -> device (or null: cuda when available, else cpu)"
    )


def missing_device(device_map: Any) -> str | None:
    """The fix when `device_map` names a GPU this machine does not have (imports torch, so
    only asked when a GPU is named)."""
    if isinstance(device_map, int) and not isinstance(device_map, bool):
        kind, index = "cuda", device_map
    elif isinstance(device_map, str) and _DEVICE.match(device_map):
        kind, _, number = device_map.partition(":")
        index = int(number or 0)
    else:
        return None
    if kind not in ("cuda", "mps"):
        return None
    import torch

    if kind == "mps":
        found = 1 if torch.backends.mps.is_available() else 0
    else:
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index < found:
        return None
    have = f"{found} {kind} device{'s' if found != 1 else ''}"
    return f"device_map={device_map!r} but this machine has {have}: use device_map=cpu or null"


def import_torch_transformers(model: Any) -> tuple[Any, Any]:
    """torch and transformers, or the error naming the extra `model` needs."""
    try:
        import torch
        import transformers
    except ImportError as error:
        raise missing_extra(model) from error
    return torch, transformers


@dataclass
class TorchRequest:
    prompt_ids: list[int]
    settings: tuple[tuple[str, Any], ...]  # generation kwargs; only equal settings share a batch
    stop_sequences: tuple[str, ...]
    grammar: Grammar | None = None
    thinking: bool = False  # the prompt opened a <think> block
    vision_inputs: dict[str, Any] | None = None  # a processor's tensors: never batched
    key: tuple[Any, ...] = field(init=False)

    def __post_init__(self) -> None:
        alone = id(self) if self.vision_inputs is not None else None
        self.key = (self.settings, self.stop_sequences, alone)

    @property
    def seed(self) -> int | None:
        return dict(self.settings).get("seed")


@dataclass
class TorchResult:
    text: str
    input_tokens: int
    output_tokens: int


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


def strip_trailing(tokens: list[int], pad_id: int) -> list[int]:
    """Drop the padding a batch appends to rows that finished before the others."""
    end = len(tokens)
    while end and tokens[end - 1] == pad_id:
        end -= 1
    return tokens[:end]


def progress_criteria() -> Any:
    """A stopping criterion that never stops: it reports each decoding step's rows to the
    runner's progress hook, so the bar moves while a long batch decodes."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class ReportProgress(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            progress.generated(int(input_ids.shape[0]))
            return input_ids.new_zeros(input_ids.shape[0], dtype=bool)

    return StoppingCriteriaList([ReportProgress()])


def counting_streamer(tokenizer: Any) -> Any:
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


def config_is_vision(model_id: str | None) -> bool:
    """Before loading (dry build): a local checkpoint whose config has a vision tower."""
    if model_id is None:
        return False
    config = Path(model_id).expanduser() / "config.json"
    try:
        return "vision_config" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def vision_inputs(
    processor: Any, req: Any, template: str | None, template_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The processor's tensors for a chat with images (PIL images, whatever form came in)."""
    messages = [
        {
            **message,
            "content": [
                {"type": "image", "image": load_pil_image(part["image"])}
                if part.get("type") == "image"
                else part
                for part in message["content"]
            ]
            if isinstance(message.get("content"), list)
            else message.get("content") or "",
        }
        for message in req.messages
    ]
    kwargs = {"add_generation_prompt": True, **template_kwargs}
    if template is not None:
        kwargs["chat_template"] = template
    return dict(
        processor.apply_chat_template(
            messages,
            tools=req.tool_schemas(),
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **kwargs,
        )
    )


def padded(torch: Any, group: Sequence[TorchRequest], pad_id: int, device: Any) -> dict[str, Any]:
    """Left-padded ids and attention mask: every prompt's end lines up."""
    width = max(len(r.prompt_ids) for r in group)
    input_ids = torch.full((len(group), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(group), width), dtype=torch.long)
    for row, request in enumerate(group):
        input_ids[row, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
        attention[row, width - len(request.prompt_ids) :] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}


def on_device(torch: Any, inputs: dict[str, Any], model: Any) -> dict[str, Any]:
    """A processor's tensors on the model's device; pixel values in the model's dtype."""
    return {
        key: value.to(model.device, dtype=model.dtype)
        if torch.is_floating_point(value)
        else value.to(model.device)
        for key, value in inputs.items()
    }
