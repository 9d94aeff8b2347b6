"""Stopping a run with Ctrl-C or `kill`: real processes, real signals, a slow loopback server.

A user who stops a run expects it to stop at once, keep what was done, say so, and tell them
how to go on; nothing may keep calling the model behind their back (runner/stop.py)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.latency_server import LatencyServer

from hydragent.config.launchers import plugin_installed
from hydragent.runner.stop import descendants

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server() -> Iterator[LatencyServer]:
    with LatencyServer(latency_ms=250, steps=1) as running:
        yield running


def _requests(server: LatencyServer) -> int:
    with urllib.request.urlopen(f"{server.root}/stats") as reply:
        return int(json.load(reply)["requests"])


def _task(tmp_path: Path, n: int = 60) -> Path:
    path = tmp_path / "many.jsonl"
    rows = [{"id": f"q{i}", "input": f"2+3, question {i}", "target": "5"} for i in range(n)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _overrides(server: LatencyServer, task: Path) -> list[str]:
    return [
        "model=openai",
        "model.model_id=latency",
        f"model.api_base={server.base_url}",
        "task=file",
        f"task.path={task}",
        "runner.max_concurrency=2",
        "runner.progress=false",
    ]


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "hydragent.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_calls(server: LatencyServer, at_least: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while _requests(server) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never reached the server"
        time.sleep(0.1)


def _stop(process: subprocess.Popen[str], number: int) -> tuple[float, list[int], str, str]:
    """Send the signal; return how long the command took to exit, the worker processes it
    had, and its output."""
    workers = descendants(process.pid)
    process.send_signal(number)
    began = time.monotonic()
    out, err = process.communicate(timeout=30)
    return time.monotonic() - began, workers, out, err


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _records(path: Path) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]  # every line whole: each one parses


@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_says_what_it_did_and_how_to_resume(
    tmp_path: Path, server: LatencyServer, number: int, code: int
) -> None:
    task, run_dir = _task(tmp_path), tmp_path / "run"
    args = ["run", *_overrides(server, task), f"hydra.run.dir={run_dir}"]
    before = _requests(server)
    process = _start(args, tmp_path)
    _wait_for_calls(server, before + 6, process)
    took, _, out, err = _stop(process, number)

    assert process.returncode == code, err
    assert took < 2.0, err
    assert "Traceback" not in out + err
    calls_at_exit = _requests(server)
    time.sleep(0.6)
    assert _requests(server) == calls_at_exit  # nothing calls the model any more
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["failed"] is False
    assert summary["counts"]["not_run"] > 0
    records = _records(run_dir / "samples.jsonl")
    assert len(records) == summary["counts"]["ok"] + summary["counts"]["error"]
    assert all(r["status"] == "ok" for r in records)  # a cut-short sample is unrun, not an error

    *_, said, resume_line = err.strip().splitlines()
    name = signal.Signals(number).name
    assert said.startswith(f"hydragent: stopped by {name}: {len(records)} of 60 samples")
    assert "interrupted: true" in said
    assert resume_line.startswith("hydragent: to resume: hydragent run ")
    command = shlex.split(resume_line.split("to resume: ", 1)[1])
    assert command[-1] == f"hydra.run.dir={run_dir}"

    resumed = subprocess.run(
        [sys.executable, "-m", "hydragent.cli", *command[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads((run_dir / "summary.json").read_text())
    assert final["interrupted"] is False
    assert final["resumed"] == len(records)
    assert final["counts"] == {"total": 60, "ok": 60, "error": 0, "not_run": 0}


LAUNCHERS = [
    pytest.param([], id="basic"),
    pytest.param(
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        id="joblib",
        marks=pytest.mark.skipif(
            not plugin_installed("hydra_plugins.hydra_joblib_launcher"),
            reason="needs hydra-joblib-launcher",
        ),
    ),
    pytest.param(
        ["hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=1"],
        id="submitit_local",
        marks=pytest.mark.skipif(
            not plugin_installed("hydra_plugins.hydra_submitit_launcher"),
            reason="needs hydra-submitit-launcher",
        ),
    ),
]


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_kill_term_stops_every_job_of_a_sweep_and_its_workers(
    tmp_path: Path, server: LatencyServer, launcher: list[str]
) -> None:
    task, sweep_dir = _task(tmp_path), tmp_path / "sweep"
    args = ["run", "-m", *_overrides(server, task), "seed=0,1,2", *launcher]
    args.append(f"hydra.sweep.dir={sweep_dir}")
    before = _requests(server)
    process = _start(args, tmp_path)
    _wait_for_calls(server, before + 6, process)
    took, workers, out, err = _stop(process, signal.SIGTERM)

    assert process.returncode == 143, err
    assert took < 2.0, err
    assert "Traceback" not in out + err and "Warning" not in err
    time.sleep(max(0.0, 2.0 - took))
    assert _alive(workers) == []  # no job process outlives the command
    calls = _requests(server)
    time.sleep(0.6)
    assert _requests(server) == calls
    summaries = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    assert summaries and all(s["interrupted"] for s in summaries)
    for folder in sweep_dir.glob("[0-9]*"):
        _records(folder / "samples.jsonl")
    *_, said, resume_line = err.strip().splitlines()
    assert said.startswith(f"hydragent: stopped by SIGTERM: sweep {sweep_dir}")
    assert resume_line.endswith(f"hydra.sweep.dir={sweep_dir}")
    assert " run -m " in resume_line


def test_once_a_stop_is_requested_no_model_call_starts() -> None:
    from hydragent.models.scripted import ScriptedModel
    from hydragent.runner import stop
    from hydragent.runner.request_path import route, stop_gate

    model = route(ScriptedModel(responses=["hi"]), [stop_gate])
    assert model.generate([{"role": "user", "content": "a"}]).content == "hi"
    stop.requested.set()
    try:
        with pytest.raises(stop.RunStoppedError, match="no new model call starts"):
            model.generate([{"role": "user", "content": "b"}])
    finally:
        stop.requested.clear()
    assert len(model.calls) == 1  # the refused call never reached the backend


PARALLEL = [p for p in LAUNCHERS if p.id != "basic"]


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("launcher", PARALLEL)
def test_every_job_in_flight_of_a_parallel_sweep_records_its_stop_before_the_command_returns(
    tmp_path: Path, launcher: list[str]
) -> None:
    """Two jobs run side by side against a slow server (2 s a call, so calls are in flight at
    the stop); Ctrl-C. Each job writes its interrupted summary before the command returns
    (it waits for the jobs' folder locks), the message counts them, and nothing is written
    afterwards: no job is killed mid-summary and none outlives the command."""
    task, sweep_dir = _task(tmp_path, n=20), tmp_path / "sweep"
    with LatencyServer(latency_ms=2000, steps=1) as slow:
        args = ["run", "-m", *_overrides(slow, task), "runner.max_error_rate=1", *launcher]
        args += ["seed=0,1,2" if "joblib" in str(launcher) else "seed=0,1"]
        args.append(f"hydra.sweep.dir={sweep_dir}")
        process = _start(args, tmp_path)
        deadline = time.monotonic() + 180
        while not all(_records(sweep_dir / job / "samples.jsonl") for job in ("0", "1")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the jobs never recorded a sample"
            time.sleep(0.1)
        took, workers, out, err = _stop(process, signal.SIGINT)
        written = _files(sweep_dir)
        time.sleep(max(0.0, 2.0 - took))
        assert _alive(workers) == []
        time.sleep(1.0)
        assert _files(sweep_dir) == written  # nothing was written after the command returned

    assert process.returncode == 130, err
    assert "Traceback" not in out + err
    in_flight = [f for f in sweep_dir.glob("[0-9]*") if _records(f / "samples.jsonl")]
    assert len(in_flight) >= 2
    for folder in in_flight:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["interrupted"] is True
        assert summary["counts"]["ok"] == len(_records(folder / "samples.jsonl"))
    *_, said, resume_line = err.strip().splitlines()
    assert f"0 job(s) finished, {len(in_flight)} interrupted in this run" in said
    assert "before writing a summary" not in said
    assert resume_line.endswith(f"hydra.sweep.dir={sweep_dir}")


def test_a_job_stopped_while_starting_is_counted_as_such(tmp_path: Path) -> None:
    """A basic sweep stopped while job 1 builds: job 0 finished, job 1 has a folder (its Hydra
    config, an empty log) but no summary; the message says so instead of 'no folder yet'."""
    from datetime import datetime, timezone

    from hydragent.runner.stop import Interrupted, stop_lines

    started = datetime.now(timezone.utc).replace(microsecond=0)
    for job in ("0", "1"):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "config.yaml").write_text("seed: 0\n")
    finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (tmp_path / "0" / "summary.json").write_text(
        json.dumps({"interrupted": False, "finished_at": finished_at})
    )
    stopped = Interrupted(signal.SIGINT, output_dir=tmp_path)
    said = stop_lines(stopped, ["-m", "seed=0,1,2"], started)[0]
    assert "1 job(s) finished, 0 interrupted, 1 stopped before writing a summary" in said
