"""Shared by P5 and P6: the same prompts through one local model, concurrently and one at a time.

Concurrent calls come from threads, as the runner makes them, so that the backend's
micro-batcher is what turns them into one padded `generate`. Throughput is output tokens (as
the backend reports them) per wall second; each mode is timed several times, median taken.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import median, print_table, timed


def prompts(count: int) -> list[list[dict[str, str]]]:
    """Distinct chat prompts of varied length, so batching has padding to deal with."""
    return [
        [{"role": "user", "content": f"Question {i}: " + "count the apples. " * (1 + i % 4)}]
        for i in range(count)
    ]


def _output_tokens(message: Any) -> int:
    usage = getattr(message, "token_usage", None)
    return int(getattr(usage, "output_tokens", 0) or 0)


def _text(message: Any) -> str:
    return str(getattr(message, "content", "") or "")


def one_at_a_time(model: Any, batch: list[list[dict[str, str]]]) -> list[Any]:
    return [model.generate(messages) for messages in batch]


def concurrent(model: Any, batch: list[list[dict[str, str]]]) -> list[Any]:
    """All requests in flight at once; a barrier makes them arrive together, as a wave would."""
    barrier = threading.Barrier(len(batch))

    def call(messages: list[dict[str, str]]) -> Any:
        barrier.wait()
        return model.generate(messages)

    with ThreadPoolExecutor(len(batch)) as pool:
        return list(pool.map(call, batch))


BATCHED = "concurrent (micro-batched)"
SAME_MODEL = "one at a time (same model)"
UNBATCHED = "one at a time (batching off)"


def compare(
    model: Any,
    unbatched: Any,
    batch: list[list[dict[str, str]]],
    repeats: int,
    title: str,
) -> dict:
    """Tokens/s of each mode (median of `repeats`), the speed-up and whether outputs agree.

    One at a time runs twice: through the batching model (each call then waits out the
    batching window for company that never comes) and through `unbatched`, the same weights
    with `max_batch_size=1`. The speed-up is taken over the faster of the two, so the window
    never flatters batching.
    """
    runs = ((SAME_MODEL, model, one_at_a_time), (UNBATCHED, unbatched, one_at_a_time))
    runs += ((BATCHED, model, concurrent),)
    for _, backend, mode in runs:  # warm up kernels, caches and threads
        mode(backend, batch[: min(2, len(batch))])
    walls: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    tokens: dict[str, list[int]] = {name: [] for name in walls}
    outputs: dict[str, list[str]] = {}
    for _ in range(repeats):
        for name, backend, mode in runs:
            seconds, replies = timed(lambda backend=backend, mode=mode: mode(backend, batch))
            walls[name].append(seconds)
            tokens[name].append(sum(_output_tokens(reply) for reply in replies))
            outputs[name] = [_text(reply) for reply in replies]
    rates = {
        name: median([t / w for t, w in zip(tokens[name], walls[name], strict=True)])
        for name in walls
    }
    baseline = max(rates[SAME_MODEL], rates[UNBATCHED])
    identical = sum(a == b for a, b in zip(outputs[UNBATCHED], outputs[BATCHED], strict=True))
    print_table(
        title,
        ["mode", "requests", "median wall s", "output tokens", "tokens/s", "x one at a time"],
        [
            [
                name,
                len(batch),
                median(walls[name]),
                median(tokens[name]),
                rates[name],
                rates[name] / baseline,
            ]
            for name in walls
        ],
    )
    print(f"outputs identical batched vs one at a time: {identical}/{len(batch)}")
    batcher = getattr(model, "_batcher", None)  # TransformersModel's MicroBatcher, if any
    return {
        "requests": len(batch),
        "tokens_per_s": rates,
        "speedup": rates[BATCHED] / baseline,
        "median_wall_s": {name: median(values) for name, values in walls.items()},
        "output_tokens": {name: median(values) for name, values in tokens.items()},
        "all_wall_s": walls,
        "batch_sizes": list(getattr(batcher, "batch_sizes", [])),
        "identical_outputs": identical,
    }
