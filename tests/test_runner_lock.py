"""One run folder, one writer: a second `hydragent run` into a folder in use stops at once.

Two runs into one folder used to both exit 0 with every call made twice (runner/lock.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.latency_server import LatencyServer

from hydragent.runner import lock
from test_runner_support import run_cli

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server() -> Iterator[LatencyServer]:
    with LatencyServer(latency_ms=200, steps=1) as running:
        yield running


def _requests(server: LatencyServer) -> int:
    with urllib.request.urlopen(f"{server.root}/stats") as reply:
        return int(json.load(reply)["requests"])


def _args(server: LatencyServer, tmp_path: Path, n: int = 20) -> list[str]:
    task = tmp_path / "many.jsonl"
    rows = [{"id": f"q{i}", "input": f"2+3, question {i}", "target": "5"} for i in range(n)]
    task.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return [
        "model=openai",
        "model.model_id=latency",
        f"model.api_base={server.base_url}",
        "task=file",
        f"task.path={task}",
        "runner.max_concurrency=1",
        "runner.progress=false",
    ]


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hydragent.cli", *args],
        cwd=cwd,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_records(path: Path, process: subprocess.Popen[str], at_least: int = 1) -> None:
    deadline = time.monotonic() + 120
    while not path.exists() or len(path.read_text().splitlines()) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_second_run_into_a_folder_in_use_exits_2_naming_the_folder_and_the_pid(
    tmp_path: Path, server: LatencyServer
) -> None:
    run_dir = tmp_path / "run"
    args = ["run", *_args(server, tmp_path), f"hydra.run.dir={run_dir}"]
    before = _requests(server)
    first = _start(args, tmp_path)
    _wait_for_records(run_dir / "samples.jsonl", first)
    hydra_files = _snapshot(run_dir / ".hydra")
    log = (run_dir / "hydragent.log").read_bytes()

    began = time.monotonic()
    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 2, second.stderr
    assert time.monotonic() - began < 30  # at once: it never waits for the first to finish
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith(f"hydragent: config error: hydra.run.dir={run_dir}: ")
    assert f"in use by PID {first.pid}" in line
    assert _snapshot(run_dir / ".hydra") == hydra_files  # the second wrote nothing
    assert (run_dir / "hydragent.log").read_bytes().startswith(log)

    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(f"q{i}" for i in range(20))
    assert _requests(server) - before == 20  # every call made once


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path: Path, server: LatencyServer) -> None:
    run_dir = tmp_path / "run"
    args = ["run", *_args(server, tmp_path), f"hydra.run.dir={run_dir}"]
    first = _start(args, tmp_path)
    _wait_for_records(run_dir / "samples.jsonl", first, at_least=2)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert (run_dir / lock.LOCK_FILE).exists()  # the file stays; the kernel dropped the lock

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed"] >= 2 and summary["counts"]["ok"] == 20


def test_a_second_sweep_into_the_same_sweep_folder_exits_2(
    tmp_path: Path, server: LatencyServer
) -> None:
    sweep_dir = tmp_path / "sweep"
    args = ["run", "-m", *_args(server, tmp_path), "seed=0,1", f"hydra.sweep.dir={sweep_dir}"]
    first = _start(args, tmp_path)
    _wait_for_records(sweep_dir / "0" / "samples.jsonl", first)
    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 2, second.stderr
    assert f"hydra.sweep.dir={sweep_dir}: this folder is in use by PID {first.pid}" in second.stderr
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    assert first.returncode == 143


def test_the_lock_is_the_kernels_and_nests_within_one_process(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hydragent.runner import lock; "
            f"lock.acquire({str(folder)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(lock.FolderBusy, match=f"in use by PID {holder.pid}"):
            lock.acquire(folder)
    finally:
        holder.kill()
        holder.wait()
    lock.acquire(folder)  # free once its holder is gone, however it ended
    lock.acquire(folder)  # nested: the same process holds it twice
    lock.release(folder)
    lock.release(folder)
