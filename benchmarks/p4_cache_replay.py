"""P4 cache replay: a finished run, re-run with `cache=on`, served from the cache alone.

The first run fills a fresh cache: N tool-calling samples (k = 3 steps) against a server that
adds L ms per call. The same run is then repeated into a new run folder (so that resume does
not skip the samples and every call goes through the cache) with `cache=on`, and again with
`cache=replay`. The server counts the requests that reach it; both re-runs must reach it 0 times.

Target: re-run >= 20x faster than the first run, with 0 requests.
Run: python benchmarks/p4_cache_replay.py [--size tiny|full] [--samples N] [--repeats R]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from common import Target, median, parser, print_table, write_record
from hydragent_job import openai_overrides, run_job, write_tasks
from latency_server import LatencyServer

NAME = "p4_cache_replay"
SIZES = {
    "tiny": {"samples": 6, "concurrency": 4, "latency_ms": 20, "repeats": 1},
    "full": {"samples": 200, "concurrency": 16, "latency_ms": 200, "repeats": 3},
}
STEPS = 3


def cache_override(folder: Path) -> list[str]:
    """A fresh sqlite cache per repetition, so the first run always starts empty."""
    return [f"cache.path={folder / 'responses.sqlite'}"]


def main() -> None:
    cli = parser(NAME, __doc__.splitlines()[0])
    cli.add_argument("--samples", type=int, default=None)
    cli.add_argument("--concurrency", type=int, default=None, help="runner.max_concurrency")
    cli.add_argument("--latency-ms", type=float, default=None)
    args = cli.parse_args()
    size = SIZES[args.size]
    samples = args.samples or size["samples"]
    concurrency = args.concurrency or size["concurrency"]
    latency_ms = args.latency_ms if args.latency_ms is not None else size["latency_ms"]
    repeats = args.repeats or size["repeats"]

    modes = ("first run (cache=on, empty)", "re-run cache=on", "re-run cache=replay")
    walls: dict[str, list[float]] = {mode: [] for mode in modes}
    requests: dict[str, list[int]] = {mode: [] for mode in modes}
    answers_agree: list[bool] = []
    with (
        LatencyServer(latency_ms=latency_ms, steps=STEPS) as server,
        tempfile.TemporaryDirectory(prefix="hydragent-p4-") as folder,
    ):
        work = Path(folder)
        task_file = write_tasks(work / "tasks.jsonl", samples)
        for repeat in range(repeats):
            base = [
                *openai_overrides(server.base_url),
                "agent=tool_calling",
                "tools=calculator",
                "task=file",
                f"task.path={task_file}",
                f"runner.max_concurrency={concurrency}",
                *cache_override(work / f"cache-{repeat}"),
            ]
            answers: dict[str, dict[str, Any]] = {}
            for mode, cache in zip(modes, ("on", "on", "replay"), strict=True):
                server.reset()
                run = run_job(
                    [*base, f"cache={cache}"], work / f"run-{repeat}-{cache}-{len(answers)}"
                )
                if run.ok != samples:
                    raise RuntimeError(f"{mode}: {samples - run.ok} failed: {run.first_error()}")
                walls[mode].append(run.wall_s)
                requests[mode].append(server.requests)
                answers[mode] = {s["id"]: s.get("answer") for s in run.samples}
            answers_agree.append(len({tuple(sorted(a.items())) for a in answers.values()}) == 1)

    wall = {mode: median(values) for mode, values in walls.items()}
    first = wall[modes[0]]
    print_table(
        f"P4 cache replay: {samples} samples, k={STEPS}, L={latency_ms:g} ms, "
        f"concurrency {concurrency}, median of {repeats}",
        ["run", "median wall s", "x faster than first", "requests to server"],
        [[mode, wall[mode], first / wall[mode], max(requests[mode])] for mode in modes],
    )
    targets = [
        Target("re-run cache=on speedup", first / wall[modes[1]], 20.0),
        Target("requests reaching the server on re-run", float(max(requests[modes[1]])), 0, False),
        Target("re-run cache=replay speedup", first / wall[modes[2]], 20.0),
        Target("requests reaching the server on replay", float(max(requests[modes[2]])), 0, False),
    ]
    write_record(
        NAME,
        args,
        {
            "samples": samples,
            "steps": STEPS,
            "latency_ms": latency_ms,
            "concurrency": concurrency,
            "repeats": repeats,
        },
        {
            "median_wall_s": wall,
            "speedup": {mode: first / wall[mode] for mode in modes},
            "requests": requests,
            "all_wall_s": walls,
            "answers_identical": all(answers_agree),
        },
        targets,
    )


if __name__ == "__main__":
    main()
