"""`hydragent report DIR`: the job table, paired comparisons, the flat results table, plots."""

from __future__ import annotations

import builtins
import json
import re
from pathlib import Path
from typing import Any

import pytest
from benchmarks.view_sweep import write_sweep

from hydragent.report import load_jobs, write_report
from hydragent.runner import run_job
from hydragent.stats import compare_records
from test_runner_support import compose_job, run_cli

PNG = b"\x89PNG\r\n\x1a\n"


def _scripted_sweep(tmp_path: Path) -> Path:
    """Two real jobs of the smoke task: one answers all six right, one only the first."""
    sweep = tmp_path / "sweep"
    for number, answers in enumerate(["[Paris,Rome,blue,honey,cold,Earth]", "[Paris,x,x,x,x,x]"]):
        folder = sweep / str(number)
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text(
            f"- model=scripted\n- model.responses={answers}\n"
        )
        overrides = ["model=scripted", "~model.match", f"model.responses={answers}"]
        run_job(compose_job(tmp_path, *overrides, "runner.max_concurrency=1"), folder)
    return sweep


def test_a_sweep_gives_one_row_per_job_with_ci_and_a_paired_comparison(tmp_path: Path) -> None:
    sweep = _scripted_sweep(tmp_path)
    report = write_report(sweep)
    lines = report.text.splitlines()
    assert lines[0].startswith("constant: model=scripted")
    assert lines[1].split()[:3] == ["job", "model.responses", "exact"]
    assert lines[3].split()[2:7] == ["1.000", "[0.61,", "1.00]", "6", "0"]  # CI, samples, errors
    assert lines[4].split()[2:4] == ["0.167", "[0.03,"]  # Wilson: inside [0, 1]
    paired = next(line for line in lines if line.startswith("0  1"))
    assert "-0.833" in paired and "B lower by 0.833" in paired
    names = {p.name for p in report.files}
    assert names == {
        "summary.json",
        "results.parquet",
        "results.csv",
        "scores.png",
        "cost.png",
        "report.html",
    }
    for path in report.files:
        assert f"wrote {path}" in str(report)
        assert path.exists()
    assert (sweep / "scores.png").read_bytes()[:8] == PNG
    page = (sweep / "report.html").read_text()
    assert "Paired comparisons with job 0" in page and "B lower by 0.833" in page


def test_the_cli_prints_the_table_and_names_every_file(tmp_path: Path) -> None:
    sweep = _scripted_sweep(tmp_path)
    result = run_cli("report", str(sweep), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("results.parquet", "results.csv", "report.html", "scores.png", "cost.png"):
        assert f"wrote {sweep / name}" in result.stdout
    assert run_cli("report", str(sweep), "--baseline", "5", cwd=tmp_path).returncode == 1
    assert run_cli("report", str(tmp_path / "nowhere"), cwd=tmp_path).returncode == 2


def test_results_parquet_has_one_row_per_sample_per_job_for_pandas_and_duckdb(
    tmp_path: Path,
) -> None:
    pd = pytest.importorskip("pandas")
    duckdb = pytest.importorskip("duckdb", reason="duckdb is in the test extra")
    write_sweep(tmp_path, jobs=4, samples=25)
    write_report(tmp_path)
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 4 * 25
    assert {"model.model_id", "seed", "model", "task", "backend"} <= set(frame.columns)
    assert frame["seed"].dtype.kind == "i"  # numeric overrides stay numeric
    assert frame.groupby("model.model_id")["job"].nunique().to_dict() == {
        "gpt-4o-mini": 2,
        "claude-3-5-haiku-20241022": 2,
    }
    errored = frame[frame["status"] == "error"]
    assert len(errored) and errored["score_exact"].isna().all()
    assert set(errored["error_cause"]) <= {"RateLimitError", "TimeoutError"}
    query = f"""select "model.model_id" as model, avg(score_exact) as accuracy, count(*) as n
                from '{tmp_path / "results.parquet"}' group by 1 order by 1"""
    rows = duckdb.sql(query).fetchall()
    assert [(m, n) for m, _, n in rows] == [
        ("claude-3-5-haiku-20241022", 50),
        ("gpt-4o-mini", 50),
    ]
    csv = pd.read_csv(tmp_path / "results.csv")
    assert csv.shape == frame.shape


def test_paired_numbers_in_the_report_are_those_of_the_stats_module(tmp_path: Path) -> None:
    write_sweep(tmp_path, jobs=3, samples=60)
    write_report(tmp_path, baseline=0)
    saved = json.loads((tmp_path / "summary.json").read_text())["comparisons"]
    records = [
        [json.loads(line) for line in (tmp_path / str(n) / "samples.jsonl").open()]
        for n in range(3)
    ]
    for entry in saved:
        (expected,) = compare_records(records[entry["a"]], records[entry["b"]])
        assert entry["diff"] == pytest.approx(expected.diff)
        assert entry["ci_low"] == pytest.approx(expected.ci_low)
        assert entry["mcnemar"]["p_value"] == pytest.approx(expected.mcnemar.p_value)
    job1 = next(e for e in saved if e["b"] == 1)
    assert job1["excluded"] > 0  # job 1's errors are left out of the pairs, not scored 0


def test_errored_samples_are_never_averaged_in_as_zero(tmp_path: Path) -> None:
    """Older records zero-filled an errored sample's scores: the report drops them."""
    folder = tmp_path / "run"
    folder.mkdir()
    lines = [
        {"id": "a", "scores": {"exact": 1.0}, "status": "ok", "token_usage": {}},
        {"id": "b", "scores": {"exact": 0.0}, "status": "error", "error": "TimeoutError: 30 s"},
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + "{torn")
    report = write_report(folder)
    row = report.text.splitlines()[3].split()
    assert row[1:4] == ["1.000", "2", "1"]  # exact 1.0 over 1 scored (no CI); 2 samples; 1 error


def test_the_table_prints_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_sweep(tmp_path, jobs=2, samples=10)
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    report = write_report(tmp_path)
    assert "exact (95% CI)" in report.text
    assert "skipped scores.png and cost.png (need matplotlib" in str(report)
    assert not (tmp_path / "scores.png").exists()
    assert (tmp_path / "report.html").exists()


@pytest.mark.parametrize("jobs", [1, 100])
def test_plots_stay_readable_from_one_job_to_a_hundred(tmp_path: Path, jobs: int) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    write_sweep(tmp_path, jobs=jobs, samples=8)
    write_report(tmp_path)
    width, height = Image.open(tmp_path / "scores.png").size
    assert width <= 1400  # one panel per metric plus errors, never one bar per job across
    assert height >= 25 * jobs  # each job keeps a readable row of its own
    assert Image.open(tmp_path / "cost.png").size[0] <= 1600


def test_a_folder_without_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no summary\.json or samples\.jsonl"):
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
    lines = report.stdout.splitlines()
    assert lines[1].split()[:2] == ["job", "grammar"]
    assert [line.split()[1] for line in lines[3:5]] == ["none", "json_schema"]
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


def test_the_readme_pandas_example_runs_on_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pandas")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (example,) = [b for b in readme.split("```python\n")[1:] if "results.parquet" in b]
    code = example.split("```", 1)[0]
    assert len(code.strip().splitlines()) == 5
    write_sweep(tmp_path, jobs=4, samples=20)
    write_report(tmp_path)
    parquet = re.search(r'"([^"]*results\.parquet)"', code).group(1)
    exec(code.replace(parquet, str(tmp_path / "results.parquet")), {})
    printed = capsys.readouterr().out
    assert "gpt-4o-mini" in printed and "claude-3-5-haiku-20241022" in printed
    assert "cost_usd" in printed and "mean" in printed


def test_a_folder_of_sweeps_lists_every_job_with_its_folder(tmp_path: Path) -> None:
    write_sweep(tmp_path / "monday", jobs=2, samples=6)
    write_sweep(tmp_path / "tuesday", jobs=2, samples=6, seed=1)
    lines = write_report(tmp_path).text.splitlines()
    assert lines[1].split()[:2] == ["job", "folder"]
    assert [line.split()[1] for line in lines[3:7]] == [
        "monday/0",
        "monday/1",
        "tuesday/0",
        "tuesday/1",
    ]


def test_samples_with_groups_get_cluster_robust_comparisons(tmp_path: Path) -> None:
    """Records carrying `group` (several questions per document) are clustered by it."""
    write_sweep(tmp_path, jobs=3, samples=60, groups=6)
    write_report(tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())["comparisons"]
    assert {c["method"] for c in saved} == {"cluster-robust (6 groups)"}
    assert all(c["clusters"] == 6 for c in saved)


def test_a_task_files_group_column_reaches_the_records_and_clusters_the_comparison(
    tmp_path: Path,
) -> None:
    """A user's task file says which samples share a document; a real run records it, and
    the report's paired CI is clustered by it without any flag."""
    rows = [
        {"id": f"q{i}", "input": f"question {i}", "target": "yes", "group": f"doc-{i % 3}"}
        for i in range(12)
    ]
    task = tmp_path / "task.jsonl"
    task.write_text("".join(json.dumps(row) + "\n" for row in rows))
    sweep = tmp_path / "sweep"
    for number, answers in enumerate(["[yes]", "[yes,no]"]):
        overrides = ["model=scripted", "~model.match", f"model.responses={answers}"]
        run_job(
            compose_job(tmp_path, *overrides, "task=file", f"task.path={task}"),
            sweep / str(number),
        )
    records = [json.loads(line) for line in (sweep / "0" / "samples.jsonl").open()]
    assert sorted({r["group"] for r in records}) == ["doc-0", "doc-1", "doc-2"]
    write_report(sweep)
    (comparison,) = json.loads((sweep / "summary.json").read_text())["comparisons"]
    assert comparison["method"] == "cluster-robust (3 groups)"


def test_the_grouping_field_can_be_named(tmp_path: Path) -> None:
    write_sweep(tmp_path, jobs=2, samples=40)
    for job in ("0", "1"):
        path = tmp_path / job / "samples.jsonl"
        records = [json.loads(line) for line in path.open()]
        for r in records:
            r["metadata"] = {"document": f"doc-{r['index'] % 4}"}
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run_cli("report", str(tmp_path), "--group-by", "metadata.document", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cluster-robust (4 groups)" in (tmp_path / "summary.json").read_text()


def test_results_a_rerun_set_aside_are_not_jobs_of_the_sweep(tmp_path: Path) -> None:
    write_sweep(tmp_path, jobs=2, samples=5)
    aside = tmp_path / "1" / "superseded" / "abc_20261127T120000Z"
    write_sweep(aside.parent / "tmp", jobs=1, samples=5)
    (aside.parent / "tmp" / "0").rename(aside)
    assert [job.name for job in load_jobs(tmp_path)] == ["0", "1"]
    assert [job.name for job in load_jobs(aside)] == [aside.name]


def test_a_second_report_reads_the_same_jobs_and_the_sweep_summary_holds_the_pairs(
    tmp_path: Path,
) -> None:
    """The summary.json report writes into a sweep folder is not taken for a job next time."""
    sweep = _scripted_sweep(tmp_path)
    first = write_report(sweep).text
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["kind"] == "sweep" and len(summary["jobs"]) == 2
    assert summary["comparisons"][0]["verdict"] == "B lower by 0.833"
    assert write_report(sweep).text == first


def test_every_results_table_has_the_model_id_column_the_readme_groups_by(tmp_path: Path) -> None:
    """Issue 21: `df.groupby("model.model_id")` raised KeyError unless model.model_id was an
    override. Two separate runs of the default scripted model override nothing of it."""
    pd = pytest.importorskip("pandas")
    for seed in (0, 1):
        run_job(compose_job(tmp_path, "model=scripted", f"seed={seed}"), tmp_path / f"s{seed}")
    write_report(tmp_path)
    df = pd.read_parquet(tmp_path / "results.parquet")
    ok = df[df["status"] == "ok"]
    means = ok.groupby("model.model_id")["score_exact"].agg(["mean", "count"])
    assert means.to_dict("index") == {"scripted": {"mean": 1.0, "count": 12}}
    assert set(df["task.name"]) == {"smoke"}


def test_cost_png_with_no_prices_says_so_instead_of_a_negative_axis(tmp_path: Path) -> None:
    """Issue 21: an empty panel with a "$-0.05" axis. Now a note, and no dollar ticks."""
    pytest.importorskip("matplotlib")
    from hydragent.report.plots import _pyplot, cost_panel

    plt = _pyplot()
    figure, (unpriced, partly) = plt.subplots(1, 2)
    cost_panel(unpriced, [None, None], 9)
    cost_panel(partly, [0.002, None], 9)
    figure.canvas.draw()
    assert [t.get_text().splitlines()[0] for t in unpriced.texts] == ["no prices known"]
    assert list(unpriced.get_xticks()) == [] and not unpriced.patches
    assert partly.get_xlim()[0] == 0 and len(partly.patches) == 2
    assert any("price unknown" in t.get_text() for t in partly.texts)
    assert all(not label.get_text().startswith("$-") for label in partly.get_xticklabels())
    plt.close(figure)
