"""`hydragent run` from a user's shell: one job, resume into its folder, sweeps, launchers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydragent.runner.launchers import plugin_installed
from test_runner_support import read_lines, run_cli

SMOKE = ("model=scripted", "task=smoke", "agent=direct", "scorer=exact")


def test_one_job_prints_a_table_and_resumes_into_its_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = run_cli("run", *SMOKE, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "1.000 ± 0.000" in first.stdout
    assert f"Run folder: {run_dir}" in first.stdout
    assert len(read_lines(run_dir / "samples.jsonl")) == 6

    again = run_cli("run", *SMOKE, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed"] == 6
    assert summary["overrides"] == list(SMOKE)  # hydra.* overrides are not the experiment
    assert len(read_lines(run_dir / "samples.jsonl")) == 6


def test_a_runtime_failure_exits_1(tmp_path: Path) -> None:
    result = run_cli(
        "run",
        *SMOKE,
        "cache=replay",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={"HYDRAGENT_CACHE_DIR": str(tmp_path / "empty-cache")},
    )
    assert result.returncode == 1
    assert "cache=replay" in result.stderr + result.stdout


def _sweep(tmp_path: Path, *extra: str):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "run",
        "-m",
        *SMOKE,
        "task.limit=3",
        "grammar=none,json_object",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_a_sweep_writes_one_folder_per_job(tmp_path: Path, launcher: str) -> None:
    sweep_dir = _sweep(tmp_path, f"hydra/launcher={launcher}")
    summaries = [json.loads((sweep_dir / n / "summary.json").read_text()) for n in ("0", "1")]
    assert [s["counts"]["total"] for s in summaries] == [3, 3]
    assert {o for s in summaries for o in s["overrides"] if o.startswith("grammar=")} == {
        "grammar=none",
        "grammar=json_object",
    }
    # The scripted answers are plain words, which json_object rejects: the grammar shows.
    assert summaries[0]["metrics"]["exact"]["mean"] == 1.0
    assert summaries[1]["counts"]["error"] > 0


def test_rerunning_a_sweep_resumes_each_job(tmp_path: Path) -> None:
    sweep_dir = _sweep(tmp_path)
    _sweep(tmp_path)
    for job in ("0", "1"):
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        assert summary["resumed"] == summary["counts"]["ok"]
        assert len(read_lines(sweep_dir / job / "samples.jsonl")) == 3


@pytest.mark.skipif(
    plugin_installed("hydra_plugins.hydra_ray_launcher"), reason="hydra-ray-launcher is installed"
)
def test_the_ray_preset_without_its_plugin_names_the_package(tmp_path: Path) -> None:
    result = run_cli(
        "run",
        "-m",
        *SMOKE,
        "hydra/launcher=ray",
        f"hydra.sweep.dir={tmp_path / 's'}",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "pip install hydra-ray-launcher" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(
    not plugin_installed("hydra_plugins.hydra_ray_launcher"),
    reason="the ray launcher needs hydra-ray-launcher (pip install hydra-ray-launcher)",
)
def test_a_sweep_on_ray(tmp_path: Path) -> None:
    sweep_dir = _sweep(tmp_path, "hydra/launcher=ray")
    assert (sweep_dir / "1" / "summary.json").exists()
