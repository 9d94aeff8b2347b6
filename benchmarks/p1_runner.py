"""P1 runner efficiency: N k-step tool-calling tasks through our runner, next to smolagents.

A local server adds L ms to every call and scripts each task as tool call, tool call, final
answer (k = 3). With C concurrent tasks the physical limit is ceil(N/C) * k * L seconds; the
efficiency of a run is that ideal over its wall time. The same server then serves smolagents'
ToolCallingAgent with its OpenAIServerModel, once in a plain loop as its docs show, and once
driven by a ThreadPoolExecutor(C).

Targets: efficiency >= 0.90; our tasks/s >= 50x the smolagents loop's, and >= 1.0x the
smolagents thread pool's.
Run: python benchmarks/p1_runner.py [--size tiny|full] [--tasks N] [--latency-ms L]
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import Target, median, parser, print_table, timed, write_record
from hydragent_job import openai_overrides, run_job, write_tasks
from latency_server import ANSWER, LatencyServer

NAME = "p1_runner"
SIZES = {
    "tiny": {"tasks": 8, "concurrency": 4, "latency_ms": 20, "loop_tasks": 2, "repeats": 1},
    "full": {"tasks": 512, "concurrency": 64, "latency_ms": 200, "loop_tasks": 32, "repeats": 3},
}
STEPS = 3


def hydragent_runner(server: LatencyServer, tasks: int, concurrency: int, work: Path) -> Any:
    """One run of `hydragent run agent=tool_calling tools=calculator` over `tasks` samples."""
    task_file = write_tasks(work / "tasks.jsonl", tasks)
    overrides = [
        *openai_overrides(server.base_url),
        "agent=tool_calling",
        "tools=calculator",
        "task=file",
        f"task.path={task_file}",
        f"runner.max_concurrency={concurrency}",
        "cache=off",
    ]
    counter = iter(range(1_000_000))

    def once() -> dict[str, Any]:
        server.reset()
        run = run_job(overrides, work / f"run-{next(counter)}")
        if run.ok != tasks:
            raise RuntimeError(f"{tasks - run.ok} hydragent samples failed: {run.first_error()}")
        stats = server.stats()
        return {
            "wall_s": run.wall_s,
            "requests": stats["requests"],
            # where the wall goes: before the first request, and after the last reply
            "startup_s": stats["first_request_at"] - run.started_at,
            "tail_s": run.ended_at - stats["last_response_at"],
            # Python threads share one GIL: CPU per request bounds what 64 threads can do
            "cpu_ms_per_request": 1000 * run.cpu_s / max(stats["requests"], 1),
            "cpu_s_per_wall_s": run.cpu_s / run.wall_s,
        }

    return once


def smolagents_model(server: LatencyServer) -> Any:
    from smolagents import OpenAIServerModel

    return OpenAIServerModel(model_id="latency", api_base=server.base_url, api_key="sk-bench")


def smolagents_task(model: Any, index: int) -> str:
    """One task through a fresh ToolCallingAgent: agents keep per-run memory, so one each."""
    from smolagents import ToolCallingAgent, tool
    from smolagents.monitoring import LogLevel

    @tool
    def calculator(expression: str) -> str:
        """Evaluates an arithmetic expression such as 2+3.

        Args:
            expression: the arithmetic expression to evaluate.
        """
        left, _, right = expression.partition("+")
        return str(int(left) + int(right))

    agent = ToolCallingAgent(tools=[calculator], model=model, verbosity_level=LogLevel.OFF)
    return str(agent.run(f"Task {index}: use the calculator to compute 2+3, then answer."))


def smolagents_loop(server: LatencyServer, tasks: int) -> Callable[[], dict[str, Any]]:
    model = smolagents_model(server)

    def once() -> dict[str, Any]:
        server.reset()
        seconds, answers = timed(lambda: [smolagents_task(model, i) for i in range(tasks)])
        _check_answers(answers, "smolagents loop")
        return {"wall_s": seconds, "requests": server.requests}

    return once


def smolagents_pool(server: LatencyServer, tasks: int, workers: int) -> Callable[[], dict]:
    model = smolagents_model(server)

    def run_all() -> list[str]:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda i: smolagents_task(model, i), range(tasks)))

    def once() -> dict[str, Any]:
        server.reset()
        seconds, answers = timed(run_all)
        _check_answers(answers, "smolagents thread pool")
        return {"wall_s": seconds, "requests": server.requests}

    return once


def _check_answers(answers: list[str], who: str) -> None:
    wrong = [answer for answer in answers if answer.strip() != ANSWER]
    if wrong:
        raise RuntimeError(f"{who}: {len(wrong)} wrong answers, e.g. {wrong[0]!r}")


def main() -> None:
    cli = parser(NAME, __doc__.splitlines()[0])
    cli.add_argument("--tasks", type=int, default=None, help="N, tasks for the runner")
    cli.add_argument("--concurrency", type=int, default=None, help="runner.max_concurrency")
    cli.add_argument("--latency-ms", type=float, default=None, help="L, added per call")
    cli.add_argument("--loop-tasks", type=int, default=None, help="tasks for the smolagents loop")
    args = cli.parse_args()
    size = SIZES[args.size]
    tasks = args.tasks or size["tasks"]
    concurrency = args.concurrency or size["concurrency"]
    latency_ms = args.latency_ms if args.latency_ms is not None else size["latency_ms"]
    loop_tasks = args.loop_tasks or size["loop_tasks"]
    repeats = args.repeats or size["repeats"]
    ideal = math.ceil(tasks / concurrency) * STEPS * latency_ms / 1000

    runs: dict[str, list[dict[str, Any]]] = {}
    with (
        LatencyServer(latency_ms=latency_ms, steps=STEPS) as server,
        tempfile.TemporaryDirectory(prefix="hydragent-p1-") as folder,
    ):
        contenders = {
            "hydragent runner": (hydragent_runner(server, tasks, concurrency, Path(folder)), tasks),
            f"smolagents ThreadPoolExecutor({concurrency})": (
                smolagents_pool(server, tasks, concurrency),
                tasks,
            ),
            "smolagents plain loop": (smolagents_loop(server, loop_tasks), loop_tasks),
        }
        for round_number in range(repeats):
            for label, (once, _) in contenders.items():
                if label == "smolagents plain loop" and round_number > 0 and repeats > 2:
                    continue  # slow and steady: two rounds suffice
                runs.setdefault(label, []).append(once())

    results: dict[str, dict[str, Any]] = {}
    for label, (_, count) in contenders.items():
        wall = median([run["wall_s"] for run in runs[label]])
        label_ideal = math.ceil(count / concurrency) * STEPS * latency_ms / 1000
        if label == "smolagents plain loop":
            label_ideal = count * STEPS * latency_ms / 1000
        results[label] = {
            "tasks": count,
            "median_wall_s": wall,
            "tasks_per_s": count / wall,
            "ideal_s": label_ideal,
            "efficiency": label_ideal / wall,
            "requests_per_task": median([run["requests"] for run in runs[label]]) / count,
            "all_wall_s": [run["wall_s"] for run in runs[label]],
        }
        if "startup_s" in runs[label][0]:
            for phase in ("startup_s", "tail_s", "cpu_ms_per_request", "cpu_s_per_wall_s"):
                results[label][f"median_{phase}"] = median([run[phase] for run in runs[label]])
    ours = results["hydragent runner"]["tasks_per_s"]
    pool_label = f"smolagents ThreadPoolExecutor({concurrency})"
    print_table(
        f"P1 runner: N={tasks}, k={STEPS}, L={latency_ms:g} ms, concurrency {concurrency}, "
        f"median of {repeats}",
        [
            "contender",
            "tasks",
            "median s",
            "ideal s",
            "efficiency",
            "tasks/s",
            "ours x",
            "req/task",
        ],
        [
            [
                label,
                r["tasks"],
                r["median_wall_s"],
                r["ideal_s"],
                r["efficiency"],
                r["tasks_per_s"],
                ours / r["tasks_per_s"],
                r["requests_per_task"],
            ]
            for label, r in results.items()
        ],
    )
    targets = [
        Target("hydragent runner efficiency", results["hydragent runner"]["efficiency"], 0.90),
        Target(
            "hydragent tasks/s over smolagents plain loop",
            ours / results["smolagents plain loop"]["tasks_per_s"],
            50.0,
        ),
        Target(
            f"hydragent tasks/s over {pool_label}", ours / results[pool_label]["tasks_per_s"], 1.0
        ),
    ]
    write_record(
        NAME,
        args,
        {
            "tasks": tasks,
            "steps": STEPS,
            "latency_ms": latency_ms,
            "concurrency": concurrency,
            "loop_tasks": loop_tasks,
            "repeats": repeats,
            "ideal_s": ideal,
        },
        results,
        targets,
    )


if __name__ == "__main__":
    main()
