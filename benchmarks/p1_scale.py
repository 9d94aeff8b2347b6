"""P1-scale: one `hydragent run` process at high concurrency, next to a bare aiohttp client.

N single-call samples (agent=direct), C at once, against the latency server, which answers
each call after L ms. The physical limit is ceil(N/C) * L seconds; a run's efficiency is that
ideal over its wall time. Side by side, on the same server, in the same minute:
- `hydragent run`, as a whole process, timed from its start to its exit (imports, config,
  start-up and teardown all count);
- a bare aiohttp client posting the same body, C at once, timed around its request loop only
  (the machine's limit: no framework, no start-up).
The ratio of the two efficiencies is the figure of issue 22 (target >= 0.90). CPU per
request is compared like for like (target <= 2x): each whole process (getrusage of the child:
imports and start-up included), and each request loop (the bare client's, timed in process;
hydragent's, its CPU read from /proc between its first request and its last reply).
With --inspect-python, inspect_ai's `inspect eval` runs too, for the record (no target), timed
as `hydragent run` is, from the python of a venv of its own: inspect_ai is no dependency here.

Run: python benchmarks/p1_scale.py [--size tiny|full] [--inspect-python VENV/bin/python]
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import Target, hydragent_executable, parser, print_table, write_record
from hydragent_job import openai_overrides, write_tasks
from latency_server import LatencyServer

from hydragent.sandbox.guards import cpu_used

NAME = "p1_scale"
SIZES: dict[str, list[dict[str, int]]] = {
    "tiny": [{"tasks": 64, "concurrency": 16, "latency_ms": 50}],
    "full": [
        {"tasks": 8192, "concurrency": 256, "latency_ms": 500},
        {"tasks": 16384, "concurrency": 1024, "latency_ms": 1000},
    ],
}
TARGET = 0.90
HEADER = ["setting", "bare eff", "hydragent eff", "ratio", "start s", "tail s"]
HEADER += ["CPU ms/req bare / ours", "loop CPU ms/req bare / ours"]
HEADER += ["inspect eff", "inspect ratio", "inspect ms/req"]
INSPECT_TASK = Path(__file__).resolve().parent / "inspect_task.py"
INSPECT_TASKS_ENV = "P1_SCALE_TASKS"  # what inspect_task.py reads the tasks file from
INSPECT_NOTE = (
    "inspect_ai: `inspect eval` whole process, openai/latency on chat completions, "
    "max_connections=C, HTTP pool C, display none, its default retries, timeouts and .eval log"
)


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPU_EVERY_S = 0.02  # how often a run's CPU time is read from /proc while it runs


def _whole_process(
    server: LatencyServer, command: list[str], work: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `command` on a reset server, timed from its start to its exit, with its CPU time
    in all and as read every CPU_EVERY_S (epoch seconds, CPU seconds), so that the CPU spent
    between its first request and its last reply can be told apart from its start-up."""
    server.reset()
    cpu = _child_cpu()
    started_at = time.time()
    start = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work, env=env
    )
    readings: list[tuple[float, float]] = []
    finished = threading.Event()

    def read_cpu() -> None:
        while not finished.wait(CPU_EVERY_S):
            used = cpu_used(child.pid)  # /proc, as the sandbox's watcher reads it
            if child.poll() is None:
                readings.append((time.time(), used))

    reader = threading.Thread(target=read_cpu, daemon=True)
    reader.start()
    stdout, stderr = child.communicate()
    finished.set()
    reader.join()
    wall = time.perf_counter() - start
    ended_at = time.time()
    cpu = _child_cpu() - cpu
    done = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
    timing = {"wall_s": wall, "cpu_s": cpu, "started_at": started_at, "ended_at": ended_at}
    return done, {**timing, "cpu_readings": readings}


def _cpu_at(readings: list[tuple[float, float]], moment: float) -> float:
    """The process's CPU seconds at `moment`, from the nearest reading at or before it."""
    before = [used for at, used in readings if at <= moment]
    return before[-1] if before else 0.0


def _server_side(server: LatencyServer, timing: dict[str, Any]) -> dict[str, float]:
    """What the server saw of one whole-process run: requests, start-up and tail; and the
    CPU the process spent from its first request to its last reply (the request loop)."""
    stats = server.stats()
    readings = timing["cpu_readings"]
    loop_cpu = _cpu_at(readings, stats["last_response_at"]) - _cpu_at(
        readings, stats["first_request_at"]
    )
    return {
        "wall_s": timing["wall_s"],
        "requests": stats["requests"],
        "max_in_flight": stats["max_in_flight"],
        "startup_s": stats["first_request_at"] - timing["started_at"],
        "tail_s": timing["ended_at"] - stats["last_response_at"],
        "cpu_s": timing["cpu_s"],
        "loop_cpu_s": loop_cpu,
    }


def hydragent_run(server: LatencyServer, tasks: int, concurrency: int, work: Path) -> dict:
    """`hydragent run` over `tasks` samples as a subprocess, from its start to its exit."""
    task_file = write_tasks(work / "tasks.jsonl", tasks)
    run_dir = work / "run"
    command = [
        hydragent_executable(),
        "run",
        *openai_overrides(server.base_url),
        "agent=direct",
        "task=file",
        f"task.path={task_file}",
        f"runner.max_concurrency={concurrency}",
        "runner.progress=false",
        "cache=off",
        f"hydra.run.dir={run_dir}",
    ]
    done, timing = _whole_process(server, command, work)
    summary_file = run_dir / "summary.json"
    if done.returncode != 0 or not summary_file.exists():
        raise RuntimeError(f"hydragent run failed ({done.returncode}): {done.stderr[-2000:]}")
    counts = json.loads(summary_file.read_text())["counts"]
    if counts["ok"] != tasks:
        raise RuntimeError(f"hydragent recorded {counts} for {tasks} samples")
    return _server_side(server, timing)


def inspect_version(python: str) -> str:
    """The inspect_ai version of that interpreter, for the record."""
    command = [python, "-c", "import inspect_ai; print(inspect_ai.__version__)"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def inspect_run(
    server: LatencyServer, tasks: int, concurrency: int, work: Path, python: str
) -> dict[str, Any]:
    """`inspect eval` over the same tasks file as a subprocess, from its start to its exit.

    The openai provider is pointed at the server and kept on chat completions (it would take
    the unknown model id for a new OpenAI model and use the Responses API). Its HTTP pool is
    sized to C so that its default of 1000 connections never caps it below C. `inspect eval`
    exits 0 even when the eval failed, so the log's header is checked afterwards (untimed).
    """
    task_file = write_tasks(work / "tasks.jsonl", tasks)
    log_dir = work / "inspect-logs"
    command = [
        python,
        "-m",
        "inspect_ai",
        "eval",
        f"{INSPECT_TASK}@p1_scale",
        "--model",
        "openai/latency",
        "--model-base-url",
        server.base_url,
        "-M",
        "responses_api=false",
        "--max-connections",
        str(concurrency),
        "--display",
        "none",
        "--log-dir",
        str(log_dir),
    ]
    env = {
        **os.environ,
        INSPECT_TASKS_ENV: str(task_file),
        "OPENAI_API_KEY": "sk-bench",
        "INSPECT_HTTP_POOL_CONNECTIONS": str(concurrency),
    }
    env.pop("PYTHONPATH", None)  # inspect runs from its own venv alone
    done, timing = _whole_process(server, command, work, env)
    if done.returncode != 0:
        raise RuntimeError(f"inspect eval failed ({done.returncode}): {done.stderr[-2000:]}")
    result = _server_side(server, timing)
    logs = sorted(log_dir.glob("*.eval"))
    if len(logs) != 1:
        raise RuntimeError(f"inspect eval wrote {len(logs)} logs: {done.stderr[-2000:]}")
    dump = [python, "-m", "inspect_ai", "log", "dump", "--header-only", str(logs[0])]
    header = json.loads(subprocess.run(dump, capture_output=True, text=True, check=True).stdout)
    completed = (header.get("results") or {}).get("completed_samples")
    if header["status"] != "success" or completed != tasks:
        error = (header.get("error") or {}).get("message")
        raise RuntimeError(f"inspect eval: {header['status']}, {completed} samples, {error}")
    if result["requests"] != tasks:
        raise RuntimeError(f"inspect eval made {result['requests']} requests for {tasks}")
    return result


async def _bare_loop(url: str, tasks: int, concurrency: int) -> dict[str, float]:
    """Post `tasks` bodies, `concurrency` at once, over one session; time the loop only."""
    import aiohttp

    body = json.dumps({"model": "latency", "messages": [{"role": "user", "content": "x"}]})
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
    left = iter(range(tasks))
    answers: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for index in left:
                text = f"Task {index}: use the calculator to compute 2+3, then answer."
                data = body.replace('"x"', json.dumps(text))
                async with session.post(url, data=data, headers=headers) as response:
                    reply = await response.json()
                answers.append(reply["choices"][0]["message"]["content"])

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if len(answers) != tasks:
        raise RuntimeError(f"bare client got {len(answers)} answers for {tasks} requests")
    return {"wall_s": wall, "loop_cpu_s": cpu}


def bare_run(server: LatencyServer, tasks: int, concurrency: int) -> dict[str, Any]:
    """The bare client in a process of its own, as hydragent gets one."""
    server.reset()
    cpu = _child_cpu()
    url = f"{server.base_url}/chat/completions"
    script = Path(__file__).resolve()
    command = [sys.executable, str(script), "--bare", url, str(tasks), str(concurrency)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=script.parent)
    if done.returncode != 0:
        raise RuntimeError(f"bare client failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["cpu_s"] = _child_cpu() - cpu
    result["requests"] = server.stats()["requests"]
    return result


def measure(
    setting: dict[str, int], work: Path, inspect_python: str | None = None
) -> dict[str, Any]:
    """Bare client, hydragent and (with `inspect_python`) inspect_ai on one server."""
    tasks, concurrency, latency_ms = (
        setting["tasks"],
        setting["concurrency"],
        setting["latency_ms"],
    )
    ideal = math.ceil(tasks / concurrency) * latency_ms / 1000
    with LatencyServer(latency_ms=latency_ms, steps=1) as server:
        bare = bare_run(server, tasks, concurrency)
        ours = hydragent_run(server, tasks, concurrency, work)
        theirs = None
        if inspect_python is not None:
            theirs = inspect_run(server, tasks, concurrency, work, inspect_python)
    for run in (bare, ours, theirs):
        if run is not None:
            run["efficiency"] = ideal / run["wall_s"]
            run["cpu_ms_per_request"] = 1000 * run["cpu_s"] / max(run["requests"], 1)
    for run in (bare, ours, theirs):
        if run is not None:
            run["loop_cpu_ms_per_request"] = 1000 * run["loop_cpu_s"] / tasks
    return {
        "setting": setting,
        "ideal_s": ideal,
        "bare": bare,
        "hydragent": ours,
        "inspect_ai": theirs,
        "ratio": ours["efficiency"] / bare["efficiency"],
        # like for like: whole process over whole process, request loop over request loop;
        # and, for the record, hydragent's whole process over the bare client's loop alone
        "cpu_ratio": ours["cpu_ms_per_request"] / bare["cpu_ms_per_request"],
        "loop_cpu_ratio": ours["loop_cpu_ms_per_request"] / bare["loop_cpu_ms_per_request"],
        "whole_over_bare_loop": ours["cpu_ms_per_request"] / bare["loop_cpu_ms_per_request"],
        "inspect_ratio": None if theirs is None else theirs["efficiency"] / bare["efficiency"],
    }


def _inspect_cells(result: dict[str, Any]) -> list[Any]:
    """The inspect_ai columns of a row: efficiency, its ratio to the bare client's, CPU."""
    theirs = result["inspect_ai"]
    if theirs is None:
        return ["not run"] * 3
    return [theirs["efficiency"], result["inspect_ratio"], theirs["cpu_ms_per_request"]]


def main() -> None:
    if sys.argv[1:2] == ["--bare"]:
        url, tasks, concurrency = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(asyncio.run(_bare_loop(url, tasks, concurrency))))
        return
    options = parser(NAME, __doc__ or "")
    options.add_argument("--setting", type=int, default=None, help="only this setting (0, 1)")
    options.add_argument(
        "--custom",
        default=None,
        metavar="N,C,L",
        help="one setting of your own instead: N samples, C at once, L ms (e.g. 2048,64,200)",
    )
    options.add_argument(
        "--inspect-python",
        default=None,
        metavar="PATH",
        help="python of a venv with inspect_ai: also run `inspect eval`, for the record",
    )
    args = options.parse_args()
    version = None if args.inspect_python is None else inspect_version(args.inspect_python)
    settings = SIZES[args.size]
    if args.setting is not None:
        settings = settings[args.setting : args.setting + 1]
    if args.custom is not None:
        tasks, concurrency, latency_ms = (int(part) for part in args.custom.split(","))
        settings = [{"tasks": tasks, "concurrency": concurrency, "latency_ms": latency_ms}]
    results: dict[str, Any] = {}
    targets: list[Target] = []
    rows = []
    for setting in settings:
        key = "N={tasks},C={concurrency},L={latency_ms}ms".format(**setting)
        with tempfile.TemporaryDirectory() as work:
            result = measure(setting, Path(work), args.inspect_python)
        results[key] = result
        bare, ours = result["bare"], result["hydragent"]
        rows.append(
            [
                key,
                bare["efficiency"],
                ours["efficiency"],
                result["ratio"],
                ours["startup_s"],
                ours["tail_s"],
                f"{bare['cpu_ms_per_request']:.3f} / {ours['cpu_ms_per_request']:.3f}",
                f"{bare['loop_cpu_ms_per_request']:.3f} / {ours['loop_cpu_ms_per_request']:.3f}",
                *_inspect_cells(result),
            ]
        )
        targets.append(Target(f"hydragent / bare efficiency at {key}", result["ratio"], TARGET))
        targets.append(
            Target(
                f"client CPU per request, whole process vs whole process, at {key}",
                result["cpu_ratio"],
                2.0,
                higher_is_better=False,
                note="imports, config and start-up included on both sides",
            )
        )
        targets.append(
            Target(
                f"client CPU per request in the request loop vs the bare loop's at {key}",
                result["loop_cpu_ratio"],
                2.0,
                higher_is_better=False,
                note="hydragent: first request to last reply, read from /proc",
            )
        )
    print_table(
        "P1-scale: one hydragent run process vs a bare aiohttp client (and inspect_ai)",
        HEADER,
        rows,
    )
    params = {"sizes": settings, "inspect_ai": version}
    notes = [INSPECT_NOTE] if version is not None else []
    write_record(NAME, args, params, results, targets, notes)


if __name__ == "__main__":
    main()
