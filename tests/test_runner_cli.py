"""`hydragent run` from a user's shell: one job, resume into its folder, sweeps, launchers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydragent import cli
from hydragent.config import launchers
from hydragent.config.launchers import plugin_installed
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


RAY = pytest.param(
    "ray",
    marks=pytest.mark.skipif(
        not plugin_installed("hydra_plugins.hydra_ray_launcher"),
        reason="the ray launcher needs hydra-ray-launcher (pip install 'hydragent[ray]')",
    ),
)


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local", RAY])
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


def test_a_launcher_without_its_plugin_stops_in_one_line_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = ("hydra_plugins.not_installed_launcher", "hydra-ray-launcher", "ray")
    monkeypatch.setitem(launchers.LAUNCHER_PLUGINS, "ray", absent)
    sweep_dir = tmp_path / "s"
    code = cli.main(["run", "-m", *SMOKE, "hydra/launcher=ray", f"hydra.sweep.dir={sweep_dir}"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.strip().splitlines() == [
        "hydragent: hydra/launcher=ray needs the hydra-ray-launcher plugin: "
        "pip install hydra-ray-launcher (or pip install 'hydragent[ray]')"
    ]
    assert not sweep_dir.exists()  # nothing ran
