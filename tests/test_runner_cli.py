"""`hydragent run` from a user's shell: one job, resume into its folder, sweeps, launchers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydragent import cli
from hydragent.config import launchers
from hydragent.config.launchers import plugin_installed
from test_runner_support import closed_port, read_lines, run_cli

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


def test_every_failed_run_exits_1_with_its_causes_on_the_console(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "run",
        *SMOKE,
        "~model.match",
        "model.responses=[Paris]",
        "model.exhausted=error",
        "runner.max_concurrency=1",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    console = result.stdout + result.stderr
    assert "errors: 5 of 6 samples (not scored)" in result.stdout
    assert "5 of 6 samples failed, by cause:" in console
    assert "5x ScriptedModelExhausted" in console
    assert "fix: give more model.responses, or model.exhausted=cycle" in console
    assert "5 of 6 samples failed or did not run (83% > runner.max_error_rate=0)" in result.stderr
    assert "HYDRA_FULL_ERROR" not in result.stderr  # a failed run, not a crash
    log = (run_dir / "hydragent.log").read_text()
    assert "5 of 6 samples failed, by cause:" in log and "fix: give more" in log


def test_a_run_against_a_dead_server_names_the_cause_and_the_fix(tmp_path: Path) -> None:
    api_base = f"http://127.0.0.1:{closed_port()}/v1"
    result = run_cli(
        "run",
        "model=openai",
        "model.api_key=sk-test-not-a-real-key-0000",
        f"model.api_base={api_base}",
        "retry=none",
        "task.limit=2",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    console = result.stdout + result.stderr
    assert "2 of 2 samples failed, by cause:" in console
    assert f"2x EndpointUnreachable: nothing answers at {api_base}" in console
    assert "fix: no server answered: check model.api_base" in console


def test_rerun_with_a_changed_seed_refuses_before_writing_anything(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert run_cli("run", *SMOKE, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.suffix != ".log"}

    refused = run_cli("run", *SMOKE, "seed=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("hydragent: config error: ")
    assert "already holds 6 results of another config" in line and "(now seed=1)" in line
    assert "runner.resume=new_config" in line
    assert {p: p.read_bytes() for p in files} == files  # .hydra/ and results untouched

    moved_on = run_cli(
        "run", *SMOKE, "seed=1", "runner.resume=new_config", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert moved_on.returncode == 0, moved_on.stderr
    (aside,) = (run_dir / "superseded").iterdir()
    assert (aside / "samples.jsonl").read_bytes() == files[run_dir / "samples.jsonl"]
    assert (aside / ".hydra" / "overrides.yaml").read_bytes() == files[
        run_dir / ".hydra" / "overrides.yaml"
    ]
    assert "seed=1" in (run_dir / ".hydra" / "overrides.yaml").read_text()


def _sweep(tmp_path: Path, *extra: str, exit_code: int = 0):
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
    assert result.returncode == exit_code, result.stderr[-3000:]
    return sweep_dir, result


RAY = pytest.param(
    "ray",
    marks=pytest.mark.skipif(
        not plugin_installed("hydra_plugins.hydra_ray_launcher"),
        reason="the ray launcher needs hydra-ray-launcher (pip install 'hydragent[ray]')",
    ),
)


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local", RAY])
def test_a_sweep_with_a_failed_job_runs_every_job_and_exits_1(
    tmp_path: Path, launcher: str
) -> None:
    sweep_dir, result = _sweep(tmp_path, f"hydra/launcher={launcher}", exit_code=1)
    summaries = [json.loads((sweep_dir / n / "summary.json").read_text()) for n in ("0", "1")]
    assert [s["counts"]["total"] for s in summaries] == [3, 3]
    assert {o for s in summaries for o in s["overrides"] if o.startswith("grammar=")} == {
        "grammar=none",
        "grammar=json_object",
    }
    # The scripted answers are plain words, which json_object rejects: the grammar shows.
    assert summaries[0]["metrics"]["exact"]["mean"] == 1.0
    assert summaries[1]["counts"]["error"] > 0 and summaries[1]["errors"]
    assert "grammar=json_object" in result.stderr  # the failed job, named


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_sweep_names_every_failed_job_in_its_last_line(tmp_path: Path, launcher: str) -> None:
    """Hydra's sweepers raise the first failed job only; the exit message names them all,
    and leaves out the job that passed."""
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "run", "-m", *SMOKE, "task.limit=2", "grammar=json_object,none,json_object",
        "seed=1,2", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hydragent: run failed: 4 jobs of the sweep in {sweep_dir} failed:")
    for job in ("0", "1", "4", "5"):
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        assert summary["failed"] and "grammar=json_object" in summary["overrides"]
        assert f"job {job} (" in last
    for job in ("2", "3"):
        assert not json.loads((sweep_dir / job / "summary.json").read_text())["failed"]
        assert f"job {job} (" not in last


def test_rerunning_a_sweep_resumes_each_job(tmp_path: Path) -> None:
    sweep_dir, _ = _sweep(tmp_path, "runner.max_error_rate=1")
    _sweep(tmp_path, "runner.max_error_rate=1")
    for job in ("0", "1"):
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        assert summary["resumed"] == summary["counts"]["ok"]
        records = read_lines(sweep_dir / job / "samples.jsonl")
        # finished samples are never repeated; failed ones are tried again, appended
        ok_ids = [r["id"] for r in records if r["status"] == "ok"]
        assert len(ok_ids) == len(set(ok_ids)) == summary["counts"]["ok"]
        assert {r["job_id"] for r in records} == {job}
        assert len(records) == 3 + summary["counts"]["error"]


def test_rerunning_a_sweep_with_another_seed_refuses(tmp_path: Path) -> None:
    sweep_dir, _ = _sweep(tmp_path, "runner.max_error_rate=1")
    before = (sweep_dir / "0" / "samples.jsonl").read_bytes()
    _, refused = _sweep(tmp_path, "runner.max_error_rate=1", "seed=7", exit_code=2)
    assert "runner.resume=new_config" in refused.stderr
    assert (sweep_dir / "0" / "samples.jsonl").read_bytes() == before


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
