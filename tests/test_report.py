"""`hydragent report DIR` on a run folder and on a sweep folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydragent.report import write_report
from hydragent.runner import run_job
from test_runner_support import compose_job, run_cli


def test_a_sweep_folder_gives_one_row_per_job_indexed_by_what_differs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for number, answers in enumerate(["[Paris,'5',blue,'7',cold,Earth]", "[Paris,x,x,x,x,x]"]):
        folder = sweep / str(number)
        folder.mkdir(parents=True)
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text(
            f"- model=scripted\n- model.responses={answers}\n"
        )
        run_job(
            compose_job(
                tmp_path,
                "model=scripted",
                "~model.match",
                f"model.responses={answers}",
                "runner.max_concurrency=1",
            ),
            folder,
        )

    table = write_report(sweep)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["model.responses", "exact"]
    assert len(lines) == 4  # header, rule, two jobs
    assert "1.000 ± 0.000" in lines[2]
    assert "0.167 ± 0.167" in lines[3]
    assert (sweep / "report.html").read_text().count("<tr>") == 3
    for png in ("scores.png", "cost.png"):
        assert (sweep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_single_run_folder_is_one_row(tmp_path: Path) -> None:
    run_job(compose_job(tmp_path, "model=scripted"), tmp_path / "run")
    table = write_report(tmp_path / "run")
    assert len(table.splitlines()) == 3
    assert (tmp_path / "run" / "report.html").exists()


def test_a_folder_without_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no summary\.json"):
        write_report(tmp_path)


def test_grammar_compare_sweep_then_report_then_offline_replay(tmp_path: Path) -> None:
    """The acceptance story: a sweep from a recipe, its report, and a cache replay."""
    env = {"HYDRAGENT_CACHE_DIR": str(tmp_path / "cache")}
    sweep = tmp_path / "sweep"
    result = run_cli(
        "run",
        "-m",
        "recipe=grammar_compare",
        "model=scripted",
        "cache=on",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]

    report = run_cli("report", str(sweep), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = [line.split()[0] for line in report.stdout.splitlines()[2:] if line.strip()]
    assert rows[:2] == ["none", "json_schema"]
    assert (sweep / "scores.png").exists()

    replay = tmp_path / "replay"
    result = run_cli(
        "run",
        "-m",
        "recipe=grammar_compare",
        "model=scripted",
        "cache=replay",
        f"hydra.sweep.dir={replay}",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]

    for job in ("0", "1"):
        recorded = json.loads((sweep / job / "summary.json").read_text())
        replayed = json.loads((replay / job / "summary.json").read_text())
        assert replayed["metrics"] == recorded["metrics"]
        assert replayed["cache"]["model_calls"] == 0
        assert replayed["cache"]["hits"] == recorded["counts"]["total"]
