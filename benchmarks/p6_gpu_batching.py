"""P6 GPU batching: the bundled Gemma 3 270M on CUDA, 32 concurrent requests vs one at a time.

Same measurement as P5 (benchmarks/local_batching.py) on the real default model of
`model=transformers`. Without CUDA it writes a record saying it was skipped and exits 0, so
`make bench` works everywhere; on a GPU machine it runs for real.

Target: concurrent tokens/s >= 10x one at a time.
Run: python benchmarks/p6_gpu_batching.py [--size tiny|full] [--requests 32] [--repeats R]
"""

from __future__ import annotations

from common import Target, parser, write_record
from local_batching import compare, prompts

NAME = "p6_gpu_batching"
SIZES = {
    "tiny": {"requests": 4, "max_new_tokens": 8, "repeats": 1},
    "full": {"requests": 32, "max_new_tokens": 64, "repeats": 3},
}


def cuda_device() -> str | None:
    """The CUDA device's name, or None when there is none (or torch is not installed)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def main() -> None:
    cli = parser(NAME, __doc__.splitlines()[0])
    cli.add_argument("--requests", type=int, default=None, help="concurrent requests")
    cli.add_argument("--max-new-tokens", type=int, default=None)
    args = cli.parse_args()
    size = SIZES[args.size]
    requests = args.requests or size["requests"]
    max_new_tokens = args.max_new_tokens or size["max_new_tokens"]
    repeats = args.repeats or size["repeats"]
    params = {
        "requests": requests,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        "model": "bundled Gemma 3 270M (model=transformers default)",
    }
    target_name = "micro-batched tokens/s over one at a time (CUDA)"

    device = cuda_device()
    if device is None:
        message = "skipped: no CUDA device here; run this script on a GPU machine"
        print(f"P6 {message}")
        write_record(
            NAME,
            args,
            {**params, "device": None},
            {"skipped": True},
            [Target(target_name, None, 10.0)],
            [message],
        )
        return

    from hydragent.models.transformers import TransformersModel

    models = [
        TransformersModel(
            device_map="cuda", max_new_tokens=max_new_tokens, max_batch_size=max_batch_size
        )
        for max_batch_size in (requests, 1)
    ]
    try:
        results = compare(
            *models,
            prompts(requests),
            repeats,
            f"P6 GPU batching: bundled Gemma on {device}, {requests} requests, "
            f"{max_new_tokens} new tokens, median of {repeats}",
        )
    finally:
        for model in models:
            model.cleanup()
    write_record(
        NAME,
        args,
        {**params, "device": device},
        {"skipped": False, **results},
        [Target(target_name, results["speedup"], 10.0)],
    )


if __name__ == "__main__":
    main()
