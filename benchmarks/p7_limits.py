"""Limits shared by a sweep (issue #23): one rate across processes, and a budget never passed.

- rate: a loopback server answers 429 above R requests per second. A joblib sweep of 4
  processes x 40 samples with `limits.requests_per_minute` = R*60 is measured beside the same
  sweep without limits (its 429s and wall time). Targets: 0 429s, and >= 0.9 R achieved.
- redis: two `hydragent run` processes sharing a Redis store (redis-server on loopback):
  their 429s and rate together.
- budget: 10 runs with random budgets and random concurrency up to 64: the spend the store's
  ledger records never passes the budget.

inspect_ai `eval-set` is not installed on this machine, so it is not measured here.
Run: python benchmarks/p7_limits.py [--size tiny|full]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Target, hydragent_executable, parser, print_table, write_record
from latency_server import LatencyServer

NAME = "p7_limits"
SIZES = {
    "tiny": {"rate": 20, "jobs": 2, "samples": 10, "budget_runs": 2, "threads": 8},
    "full": {"rate": 20, "jobs": 4, "samples": 40, "budget_runs": 10, "threads": 8},
}
PRICE = ["+pricing.input_per_mtok=1000", "+pricing.output_per_mtok=1000"]  # $0.001 a token


def write_task(path: Path, count: int) -> Path:
    rows = [{"id": f"q{i}", "input": f"What is 2+3? ({i})", "target": "5"} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def hydragent(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_API_KEY": "bench-key", "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        [hydragent_executable(), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def served(server: LatencyServer, task: Path, threads: int) -> list[str]:
    return [
        "model=openai",
        f"model.api_base={server.base_url}",
        "task=file",
        f"task.path={task}",
        "scorer=exact",
        "runner.progress=false",
        f"runner.max_concurrency={threads}",
        "runner.max_error_rate=1",  # without limits samples may fail on 429s: still measured
    ]


def achieved(stats: dict[str, float]) -> float:
    span = stats["last_response_at"] - stats["first_request_at"]
    return stats["requests"] / span if span > 0 else 0.0


def sweep(work: Path, size: dict[str, Any], limited: bool) -> dict[str, Any]:
    """The joblib sweep, with or without the shared rate limit."""
    task = write_task(work / "task.jsonl", size["samples"])
    seeds = ",".join(str(i) for i in range(size["jobs"]))
    limit = [f"limits.requests_per_minute={size['rate'] * 60}"] if limited else []
    folder = work / ("limited" if limited else "unlimited")
    with LatencyServer(latency_ms=50, steps=1, max_rps=size["rate"]) as server:
        started = time.perf_counter()
        run = hydragent(
            [
                "run",
                "-m",
                "hydra/launcher=joblib",
                f"hydra.launcher.n_jobs={size['jobs']}",
                *served(server, task, size["threads"]),
                *limit,
                f"seed={seeds}",
                f"hydra.sweep.dir={folder}",
            ],
            work,
        )
        _, stderr = run.communicate(timeout=1200)
        wall = time.perf_counter() - started
        stats = server.stats()
    summaries = [json.loads(p.read_text()) for p in folder.glob("*/summary.json")]
    return {
        "exit_code": run.returncode,
        "wall_s": round(wall, 2),
        "requests_answered": int(stats["requests"]),
        "answered_429": int(stats["rate_limited"]),
        "achieved_rps": round(achieved(stats), 2),
        "ok_samples": sum(s["counts"]["ok"] for s in summaries),
        "error_tail": stderr[-500:] if run.returncode else "",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_pair(work: Path, size: dict[str, Any]) -> dict[str, Any] | None:
    """Two `hydragent run` processes sharing one Redis store."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    server_process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        task = write_task(work / "redis-task.jsonl", size["samples"])
        url = f"redis://127.0.0.1:{port}/0"
        with LatencyServer(latency_ms=50, steps=1, max_rps=size["rate"]) as server:
            runs = [
                hydragent(
                    [
                        "run",
                        *served(server, task, size["threads"]),
                        f"limits.requests_per_minute={size['rate'] * 60}",
                        f"limits.store={url}",
                        f"hydra.run.dir={work / f'redis-run{i}'}",
                    ],
                    work,
                )
                for i in range(2)
            ]
            codes = [(run.communicate(timeout=1200), run.returncode)[1] for run in runs]
            stats = server.stats()
    finally:
        server_process.terminate()
        server_process.wait(timeout=10)
    return {
        "exit_codes": codes,
        "requests_answered": int(stats["requests"]),
        "answered_429": int(stats["rate_limited"]),
        "achieved_rps": round(achieved(stats), 2),
    }


def budgets(work: Path, size: dict[str, Any], seed: int = 7) -> list[dict[str, Any]]:
    """Runs with random budgets and concurrency; each one's spend against its budget."""
    rng = random.Random(seed)
    task = write_task(work / "budget-task.jsonl", size["samples"])
    rows = []
    with LatencyServer(latency_ms=5, steps=1) as server:
        for index in range(size["budget_runs"]):
            budget = round(rng.uniform(0.05, 1.0), 3)
            threads = rng.randint(1, 64)
            folder = work / f"budget-{index}"
            run = hydragent(
                [
                    "run",
                    *served(server, task, threads),
                    *PRICE,
                    "generation.max_tokens=10",
                    f"limits.budget_usd={budget}",
                    f"hydra.run.dir={folder}",
                ],
                work,
            )
            run.communicate(timeout=600)
            summary = json.loads((folder / "summary.json").read_text())
            rows.append(
                {
                    "budget_usd": budget,
                    "max_concurrency": threads,
                    "spent_usd": summary["limits"]["store_spent_usd"],
                    "ok_samples": summary["counts"]["ok"],
                    "exit_code": run.returncode,
                }
            )
    return rows


def main() -> None:
    args = parser(NAME, __doc__.splitlines()[0]).parse_args()
    size = SIZES[args.size]
    with tempfile.TemporaryDirectory(prefix="p7-") as tmp:
        work = Path(tmp)
        limited = sweep(work, size, limited=True)
        unlimited = sweep(work, size, limited=False)
        pair = redis_pair(work, size)
        spent = budgets(work, size)
    print_table(
        f"rate: {size['jobs']} processes x {size['samples']} samples, server 429s above "
        f"{size['rate']}/s",
        ["sweep", "429s", "achieved/s", "share of R", "ok", "wall s"],
        [
            [
                name,
                r["answered_429"],
                r["achieved_rps"],
                r["achieved_rps"] / size["rate"],
                r["ok_samples"],
                r["wall_s"],
            ]
            for name, r in (("limits.requests_per_minute=R*60", limited), ("no limits", unlimited))
        ],
    )
    if pair:
        print_table(
            "redis: two hydragent run processes, one store",
            ["429s", "achieved/s", "exit codes"],
            [[pair["answered_429"], pair["achieved_rps"], pair["exit_codes"]]],
        )
    print_table(
        "budget: random budgets and concurrency",
        ["budget $", "concurrency", "spent $", "ok", "exit"],
        [
            [r["budget_usd"], r["max_concurrency"], r["spent_usd"], r["ok_samples"], r["exit_code"]]
            for r in spent
        ],
    )
    over = sum(r["spent_usd"] > r["budget_usd"] for r in spent)
    targets = [
        Target("rate: 429s with limits", limited["answered_429"], 0, higher_is_better=False),
        Target("rate: share of R achieved", limited["achieved_rps"] / size["rate"], 0.9),
        Target("budget: runs that spent over their budget", over, 0, higher_is_better=False),
    ]
    if pair:
        targets.append(
            Target("redis: 429s for two processes", pair["answered_429"], 0, higher_is_better=False)
        )
    write_record(
        NAME,
        args,
        params=size,
        results={"limited": limited, "unlimited": unlimited, "redis": pair, "budget": spent},
        targets=targets,
        notes=["inspect_ai is not installed here: its eval-set was not measured"],
    )


if __name__ == "__main__":
    main()
