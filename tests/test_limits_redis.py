"""Limits across machines' worth of processes, through a Redis store: two separate
`hydragent run` processes stay under one rate together, and a Ray sweep
(`hydra/launcher=ray`, a local Ray cluster on loopback) shares it too."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_limits_cli import REPO, LatencyServer, served, summaries, write_task

pytest_plugins = ["limits_support"]  # the redis_db fixture


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "HYDRA_FULL_ERROR": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("RAY_AUTH_MODE", "disabled")  # a local test cluster: no token files
    return subprocess.Popen(
        [sys.executable, "-m", "hydragent.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_hydragent_runs_sharing_a_redis_store_stay_under_the_limit_together(
    tmp_path: Path, redis_db: str
) -> None:
    """Each run alone would send 8 calls at once; both together get 20/s and no 429."""
    rate = 20
    task = write_task(tmp_path / "task.jsonl", 40)
    with LatencyServer(latency_ms=50, steps=1, max_rps=rate) as server:
        runs = [
            start(
                "run",
                *served(server, task),
                "runner.max_concurrency=8",
                f"limits.requests_per_minute={rate * 60}",
                f"limits.store={redis_db}",
                f"hydra.run.dir={tmp_path / f'run{i}'}",
                cwd=tmp_path,
            )
            for i in range(2)
        ]
        outputs = [run.communicate(timeout=300) for run in runs]
        stats = server.stats()
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
    assert stats["rate_limited"] == 0
    assert stats["requests"] == 80
    achieved = stats["requests"] / (stats["last_response_at"] - stats["first_request_at"])
    assert achieved <= rate * 1.05
    for i in range(2):
        summary = json.loads((tmp_path / f"run{i}" / "summary.json").read_text())
        assert summary["limits"]["store"] == redis_db
        assert not (tmp_path / f"run{i}" / "limits.sqlite").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="the ray extra is not installed: pip install 'hydragent[ray]'",
)
def test_a_ray_sweep_shares_limits_through_redis(tmp_path: Path, redis_db: str) -> None:
    """`hydra/launcher=ray` on a local Ray cluster (started by the launcher's ray.init on
    this machine): 2 jobs x 30 samples, 20/s together, no 429."""
    rate = 20
    task = write_task(tmp_path / "task.jsonl", 30)
    with LatencyServer(latency_ms=50, steps=1, max_rps=rate) as server:
        run = start(
            "run",
            "-m",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            *served(server, task),
            "runner.max_concurrency=8",
            f"limits.requests_per_minute={rate * 60}",
            f"limits.store={redis_db}",
            "seed=0,1",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            cwd=tmp_path,
        )
        _, stderr = run.communicate(timeout=400)
        stats = server.stats()
    assert run.returncode == 0, stderr[-3000:]
    assert stats["rate_limited"] == 0
    assert stats["requests"] == 60
    jobs = summaries(tmp_path / "sweep")
    assert len(jobs) == 2 and all(job["limits"]["store"] == redis_db for job in jobs)
