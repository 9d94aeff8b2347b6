"""P2 per-call overhead: `generate` against a zero-latency server, next to the raw openai client.

Three clients make the same sequential calls to the same local server, which answers at once:
hydragent's OpenAIServerModel, the raw `openai` client's `chat.completions.create`, and
smolagents' OpenAIServerModel. Rounds alternate the order so that drift on a shared machine
hits every client alike; the figure per client is the median over rounds.

Targets: ours <= 1.05x the raw client's wall time, and no slower than smolagents.
Run: python benchmarks/p2_overhead.py [--size tiny|full] [--calls N] [--repeats R]
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from common import Target, median, parser, print_table, timed, write_record
from latency_server import LatencyServer

NAME = "p2_overhead"
MESSAGES = [
    {"role": "system", "content": "You are a terse calculator."},
    {"role": "user", "content": "What is 2+3?"},
]
SIZES = {
    "tiny": {"calls": 20, "repeats": 1, "warmup": 5},
    "full": {"calls": 2000, "repeats": 5, "warmup": 100},
}


def hydragent_call(base_url: str) -> Callable[[], Any]:
    from hydragent.models.openai import OpenAIServerModel

    model = OpenAIServerModel(model_id="latency", api_base=base_url, api_key="sk-bench")
    return lambda: model.generate(MESSAGES)


def raw_openai_call(base_url: str) -> Callable[[], Any]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-bench")
    return lambda: client.chat.completions.create(model="latency", messages=MESSAGES)


def smolagents_call(base_url: str) -> Callable[[], Any]:
    from smolagents import OpenAIServerModel

    model = OpenAIServerModel(model_id="latency", api_base=base_url, api_key="sk-bench")
    return lambda: model.generate(MESSAGES)


CLIENTS: dict[str, Callable[[str], Callable[[], Any]]] = {
    "hydragent": hydragent_call,
    "raw openai": raw_openai_call,
    "smolagents": smolagents_call,
}


def run_calls(call: Callable[[], Any], count: int) -> tuple[float, float]:
    """Wall and CPU seconds of `count` sequential calls, after a collection so that one
    client's garbage is not billed to the next. CPU time is this process's only: the server's
    work is not in it, and it is less disturbed by other load on a shared machine."""
    gc.collect()
    cpu_start = time.process_time()

    def loop() -> None:
        for _ in range(count):
            call()

    seconds, _ = timed(loop)
    return seconds, time.process_time() - cpu_start


def main() -> None:
    cli = parser(NAME, __doc__.splitlines()[0])
    cli.add_argument("--calls", type=int, default=None, help="calls per client per round")
    args = cli.parse_args()
    size = SIZES[args.size]
    calls = args.calls or size["calls"]
    repeats = args.repeats or size["repeats"]

    with LatencyServer(latency_ms=0) as server:
        callers = {name: make(server.base_url) for name, make in CLIENTS.items()}
        for call in callers.values():
            run_calls(call, size["warmup"])
        seconds: dict[str, list[float]] = {name: [] for name in callers}
        cpu: dict[str, list[float]] = {name: [] for name in callers}
        order = list(callers)
        for round_number in range(repeats):
            shift = round_number % len(order)
            for name in order[shift:] + order[:shift]:
                wall_s, cpu_s = run_calls(callers[name], calls)
                seconds[name].append(wall_s)
                cpu[name].append(cpu_s)
        served = server.requests

    wall = {name: median(values) for name, values in seconds.items()}
    cpu_us = {name: 1e6 * median(values) / calls for name, values in cpu.items()}
    raw = wall["raw openai"]
    rows = [
        [
            name,
            wall[name],
            1e6 * wall[name] / calls,
            cpu_us[name],
            wall[name] / raw,
            cpu_us[name] / cpu_us["raw openai"],
            calls / wall[name],
        ]
        for name in callers
    ]
    print_table(
        f"P2 per-call overhead: {calls} calls x {repeats} rounds, zero-latency server",
        [
            "client",
            "median wall s",
            "wall us/call",
            "cpu us/call",
            "wall x raw",
            "cpu x raw",
            "calls/s",
        ],
        rows,
    )
    expected = (calls * repeats + size["warmup"]) * len(callers)
    targets = [
        Target("hydragent wall / raw openai wall", wall["hydragent"] / raw, 1.05, False),
        Target(
            "hydragent wall / smolagents wall", wall["hydragent"] / wall["smolagents"], 1.0, False
        ),
    ]
    write_record(
        NAME,
        args,
        {"calls": calls, "repeats": repeats, "latency_ms": 0},
        {
            "median_wall_s": wall,
            "us_per_call": {name: 1e6 * value / calls for name, value in wall.items()},
            "all_wall_s": seconds,
            "ratio_to_raw": {name: value / raw for name, value in wall.items()},
            "client_cpu_us_per_call": cpu_us,
            "cpu_ratio_to_raw": {n: v / cpu_us["raw openai"] for n, v in cpu_us.items()},
            "server_requests": served,
            "expected_requests": expected,
        },
        targets,
    )


if __name__ == "__main__":
    main()
