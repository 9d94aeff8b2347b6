"""`limits` as a user meets it: a joblib sweep against a loopback server that answers 429
above R requests per second stays under R and sees no 429; a budget that runs out stops the
run (exit 1) with the spend, the budget and the command that continues, and that command
completes the rest without asking again for a sample that is already ok."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from latency_server import LatencyServer  # noqa: E402


def write_task(path: Path, count: int) -> Path:
    rows = [{"id": f"q{i}", "input": f"What is 2+3? ({i})", "target": "5"} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def hydragent(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "HYDRA_FULL_ERROR": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "hydragent.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def served(server: LatencyServer, task: Path) -> list[str]:
    return [
        "model=openai",
        f"model.api_base={server.base_url}",
        "task=file",
        f"task.path={task}",
        "scorer=exact",
        "runner.progress=false",
    ]


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/summary.json"))]


def test_a_joblib_sweep_shares_one_rate_limit_and_sees_no_429(tmp_path: Path) -> None:
    """4 jobs x 40 samples, 8 threads each, against a server that answers 429 above 20/s:
    with limits.requests_per_minute=1200 the sweep as a whole stays under 20/s."""
    rate = 20
    task = write_task(tmp_path / "task.jsonl", 40)
    with LatencyServer(latency_ms=50, steps=1, max_rps=rate) as server:
        result = hydragent(
            "run",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=4",
            *served(server, task),
            "runner.max_concurrency=8",
            f"limits.requests_per_minute={rate * 60}",
            "seed=0,1,2,3",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            cwd=tmp_path,
        )
        stats = server.stats()
    assert result.returncode == 0, result.stderr[-3000:]
    assert stats["rate_limited"] == 0
    assert stats["requests"] == 160
    achieved = stats["requests"] / (stats["last_response_at"] - stats["first_request_at"])
    assert achieved <= rate * 1.05
    jobs = summaries(tmp_path / "sweep")
    assert len(jobs) == 4 and all(job["counts"]["ok"] == 40 for job in jobs)
    assert all(job["limits"]["rate_limited"] == 0 for job in jobs)
    assert (tmp_path / "sweep" / "limits.sqlite").is_file()  # auto: one store at the root
    assert "0 429s" in result.stdout
    report = hydragent("report", str(tmp_path / "sweep"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "limits over 4 jobs: 160 requests, 0 429s" in report.stdout
    total = json.loads((tmp_path / "sweep" / "summary.json").read_text())["limits"]
    assert total["requests"] == 160 and total["rate_limited"] == 0


def test_a_budget_that_runs_out_stops_the_run_and_a_larger_budget_completes_the_rest(
    tmp_path: Path,
) -> None:
    task = write_task(tmp_path / "task.jsonl", 20)
    run_dir = tmp_path / "run"
    price = ["+pricing.input_per_mtok=1000", "+pricing.output_per_mtok=1000"]  # $0.001/token
    with LatencyServer(latency_ms=5, steps=1) as server:
        first = hydragent(
            "run",
            *served(server, task),
            *price,
            "generation.max_tokens=10",
            "runner.max_concurrency=4",
            "limits.budget_usd=0.3",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
        )
        asked_first = server.requests
        summary = json.loads((run_dir / "summary.json").read_text())
        assert first.returncode == 1, first.stderr[-3000:]
        spent = summary["limits"]["store_spent_usd"]
        assert 0 < spent <= 0.3
        message = first.stderr.strip().splitlines()[-1]
        assert "budget exhausted" in message and "limits.budget_usd=0.3" in message
        assert f"${spent:.6g} spent" in message
        records = [json.loads(line) for line in (run_dir / "samples.jsonl").open()]
        ok = [r for r in records if r["status"] == "ok"]
        stopped = [r for r in records if r["status"] != "ok"]
        assert 0 < len(ok) < 20 and len(ok) == asked_first
        assert all(r["error_type"] == "BudgetExhausted" for r in stopped)
        assert all("limits.budget_usd" in r["error"] for r in stopped)

        command = shlex.split(message.split("Continue with: ", 1)[1])
        assert command[:2] == ["hydragent", "run"] and "limits.budget_usd=0.6" in command
        server.reset()
        second = hydragent(*command[1:], cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-3000:]
        assert server.requests == 20 - len(ok)  # the ok samples were not asked again
    final = json.loads((run_dir / "summary.json").read_text())
    assert final["counts"]["ok"] == 20
    assert final["limits"]["store_spent_usd"] <= 0.6


@pytest.mark.parametrize("store", ["auto", "sqlite"])
def test_validate_reports_the_store_and_the_budget_problems_at_once(
    tmp_path: Path, store: str
) -> None:
    url = "sqlite:/x" if store == "sqlite" else "auto"
    result = hydragent(
        "validate", "model=scripted", f"limits.store={url}", "limits.budget_usd=2", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "pricing.input_per_mtok" in result.stderr
    assert ("limits.store" in result.stderr) == (store == "sqlite")


def test_jobs_of_a_sweep_share_one_cache_and_the_same_request_is_made_once(
    tmp_path: Path,
) -> None:
    """4 jobs that ask the same 20 questions at the same time (they differ only in a setting
    that changes no reply), with cache=on: the server answers each question once."""
    task = write_task(tmp_path / "task.jsonl", 20)
    cache = tmp_path / "shared" / "responses.sqlite"
    with LatencyServer(latency_ms=300, steps=1) as server:
        result = hydragent(
            "run",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=4",
            *served(server, task),
            "cache=on",
            f"cache.path={cache}",
            "runner.max_concurrency=4,5,6,7",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            cwd=tmp_path,
        )
        asked = server.requests
    assert result.returncode == 0, result.stderr[-3000:]
    assert asked == 20
    jobs = summaries(tmp_path / "sweep")
    assert len(jobs) == 4 and all(job["counts"]["ok"] == 20 for job in jobs)
    assert sum(job["cache"]["model_calls"] for job in jobs) == 20
    assert sum(job["cache"]["hits"] for job in jobs) == 60


def test_a_sweep_whose_budget_runs_out_prints_the_sweep_command_that_continues(
    tmp_path: Path,
) -> None:
    """The budget is the sweep's: when it runs out the message gives the sweep's own command
    (its launcher and its sweep overrides) and folder, and that command finishes every job."""
    task = write_task(tmp_path / "task.jsonl", 6)
    sweep = tmp_path / "sweep"
    price = ["+pricing.input_per_mtok=1000", "+pricing.output_per_mtok=1000"]
    with LatencyServer(latency_ms=5, steps=1) as server:
        first = hydragent(
            "run",
            "-m",
            "hydra/launcher=joblib",
            *served(server, task),
            *price,
            "generation.max_tokens=10",
            "limits.budget_usd=0.25",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
            cwd=tmp_path,
        )
        assert first.returncode == 1, first.stderr[-3000:]
        asked = server.requests
        message = first.stderr.strip().splitlines()[-1]
        command = shlex.split(message.split("Continue with: ", 1)[1])
        assert command[:4] == ["hydragent", "run", "-m", "hydra/launcher=joblib"]
        assert "seed=0,1" in command and f"hydra.sweep.dir={sweep}" in command
        server.reset()
        second = hydragent(*command[1:], cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-3000:]
        assert server.requests == 12 - asked  # only what the first run left
    assert all(job["counts"]["ok"] == 6 for job in summaries(sweep))


def test_a_relative_sqlite_store_is_one_file_in_the_launch_directory_whatever_chdir_says(
    tmp_path: Path,
) -> None:
    """`limits.store=sqlite:///shared.sqlite` with `hydra.job.chdir=true`: both jobs of the
    sweep share the one file next to where hydragent was started, not one file each in
    their own folders (which would make the shared limits silently per-job)."""
    done = hydragent(
        "run",
        "-m",
        "model=scripted",
        "task=smoke",
        "runner.progress=false",
        "limits.store=sqlite:///shared.sqlite",
        "limits.max_concurrency=2",
        "hydra.job.chdir=true",
        "seed=0,1",
        "hydra.sweep.dir=S",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.sqlite")) == [
        Path("shared.sqlite")
    ]
    stores = {s["limits"]["store"] for s in summaries(tmp_path / "S")}
    assert stores == {f"sqlite:///{tmp_path / 'shared.sqlite'}"}


@pytest.mark.parametrize("parent", ["afile", "missing"])
def test_validate_and_run_agree_on_a_sqlite_store_outside_a_folder(
    tmp_path: Path, parent: str
) -> None:
    """`limits.store=sqlite:///afile/x.sqlite` (a file as its folder) or a missing folder:
    validate and run both exit 2 with one line naming limits.store, and run writes nothing."""
    (tmp_path / "afile").write_text("")
    args = ("model=scripted", "task=smoke", "limits.max_concurrency=2")
    store = f"limits.store=sqlite:///{parent}/x.sqlite"
    for command in ("validate", "run"):
        result = hydragent(command, *args, store, "hydra.run.dir=out", cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr[-2000:])
        assert f"limits.store={store.split('=', 1)[1]!r}" in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_the_budgets_pricing_fix_works_as_typed_and_a_misspelt_price_lists_the_keys(
    tmp_path: Path,
) -> None:
    """`validate limits.budget_usd=0.01` on an unpriced model says how to price it; typing
    that fix (with the model's prices) is accepted; a misspelt pricing key lists the real
    ones."""
    base = ("validate", "model=scripted", "task=smoke", "limits.budget_usd=0.01")
    refused = hydragent(*base, cwd=tmp_path)
    assert refused.returncode == 2
    fix = refused.stderr.split("dollars per million tokens: ", 1)[1].split(" (", 1)[0]
    assert fix.split() == ["pricing.input_per_mtok=0.5", "pricing.output_per_mtok=1.5"]
    accepted = hydragent(*base, *shlex.split(fix), cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    misspelt = hydragent(*base, "pricing.input_per_mtoks=1", cwd=tmp_path)
    assert misspelt.returncode == 2
    assert "input_per_mtok" in misspelt.stderr and "output_per_mtok" in misspelt.stderr
    assert "valid keys: none" not in misspelt.stderr


def test_a_tokens_per_minute_too_small_for_one_call_is_refused_not_stalled(
    tmp_path: Path,
) -> None:
    """`limits.tokens_per_minute=10` with an output cap of 32: validate and run exit 2 naming
    the key and the cap. With a cap of 5, whether the call fits depends on its prompt: each
    call is refused at once naming limits.tokens_per_minute (exit 1), instead of the first
    sample taking a minute and the rest never finishing."""
    base = ("model=scripted", "task=smoke", "runner.progress=false", "limits.tokens_per_minute=10")
    for command in ("validate", "run"):
        refused = hydragent(command, *base, "hydra.run.dir=out", cwd=tmp_path, timeout=60)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "limits.tokens_per_minute=10" in refused.stderr
        assert "generation.max_tokens=32" in refused.stderr
    assert not (tmp_path / "out").exists()
    ran = hydragent("run", *base, "generation.max_tokens=5", "hydra.run.dir=out", cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr[-2000:]
    assert "CallTooLarge: limits.tokens_per_minute=10" in ran.stderr + ran.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["limits"]["requests"] == 0 and summary["limits"]["waited_s"] < 1
