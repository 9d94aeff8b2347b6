"""Batched vs one-at-a-time tokens/s for the in-process backends on a GPU.

- `transformers`: the bundled Gemma 3 270M (model_id null), micro-batched across threads.
- `vllm`: VLLMModel on `--vllm-model` (a hub id or folder), when vllm is installed.
Backends that cannot run here (no CUDA, no vllm) are reported as skipped, never failed.

Run: python benchmarks/gpu/local_backends.py [--requests 16] [--max-new-tokens 64]
      [--vllm-model Qwen/Qwen2.5-0.5B-Instruct] [--out results.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

QUESTIONS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "What is 12 times 12?",
    "Write one sentence about the sea.",
    "Who wrote Hamlet?",
    "What is the boiling point of water in Celsius?",
    "Give a synonym for happy.",
    "What planet is closest to the sun?",
]


def prompts(count: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}] for i in range(count)]


def tokens_per_second(model: Any, batch: list, concurrent: bool, **call: Any) -> dict[str, Any]:
    started = time.perf_counter()
    if concurrent:
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            replies = list(pool.map(lambda m: model.generate(m, **call), batch))
    else:
        replies = [model.generate(m, **call) for m in batch]
    seconds = time.perf_counter() - started
    tokens = sum(r.token_usage.output_tokens for r in replies)
    rate = round(tokens / seconds, 1)
    return {"seconds": round(seconds, 3), "output_tokens": tokens, "tok_s": rate}


def measure(name: str, build: Any, requests: int, max_new_tokens: int) -> dict[str, Any]:
    started = time.perf_counter()
    model = build()
    load_s = round(time.perf_counter() - started, 2)
    batch = prompts(requests)
    model.generate(batch[0], max_new_tokens=4)  # warm-up: kernels, caches
    alone = tokens_per_second(model, batch, False, max_new_tokens=max_new_tokens)
    together = tokens_per_second(model, batch, True, max_new_tokens=max_new_tokens)
    model.cleanup()
    return {
        "backend": name,
        "load_s": load_s,
        "one_at_a_time": alone,
        "concurrent": together,
        "speedup": round(together["tok_s"] / max(alone["tok_s"], 1e-9), 2),
    }


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--requests", type=int, default=16)
    cli.add_argument("--max-new-tokens", type=int, default=64)
    cli.add_argument("--vllm-model", default="Qwen/Qwen2.5-0.5B-Instruct")
    cli.add_argument("--out", default=None, help="also write the results as JSON here")
    args = cli.parse_args()

    import torch

    results: list[dict[str, Any]] = []
    if not torch.cuda.is_available():
        results.append({"backend": "all", "skipped": "no CUDA device"})
    else:
        from hydragent.models import TransformersModel

        results.append(
            measure(
                "transformers (bundled Gemma 3 270M)",
                lambda: TransformersModel(max_batch_size=args.requests, batch_window_s=0.05),
                args.requests,
                args.max_new_tokens,
            )
        )
        if importlib.util.find_spec("vllm") is None:
            results.append({"backend": "vllm", "skipped": "vllm is not installed"})
        else:
            from hydragent.models import VLLMModel

            results.append(
                measure(
                    f"vllm ({args.vllm_model})",
                    lambda: VLLMModel(args.vllm_model, temperature=0.0),
                    args.requests,
                    args.max_new_tokens,
                )
            )
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    report = {"device": device, "requests": args.requests, "results": results}
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
