"""The benchmark scripts keep working: each runs at its tiny size and writes its JSON record.

Timings are never asserted here (benchmarks measure, tests check behaviour); what is checked is
that every script ran to the end against its own local servers and recorded its targets.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def needs(module: str) -> None:
    """Skip when the product module a benchmark drives has not been built in this checkout."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        pytest.skip(f"{module} is not available, so its benchmark cannot run")


def run_benchmark(script: str, out: Path, *extra: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--size", "tiny", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=BENCHMARKS.parent,
    )
    assert result.returncode == 0, (
        f"{script} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    )
    record = json.loads(out.read_text())
    assert record["size"] == "tiny"
    assert record["targets"], f"{script} recorded no targets"
    for target in record["targets"]:
        assert {"name", "value", "threshold", "met"} <= set(target)
    return record


def test_p1_runner_and_smolagents_all_finish_every_task(tmp_path: Path) -> None:
    needs("hydragent.runner")
    needs("smolagents")
    record = run_benchmark("p1_runner.py", tmp_path / "p1.json")
    for contender in record["results"].values():
        assert contender["requests_per_task"] == 3  # tool call, tool call, final answer


def test_p1_scale_runs_hydragent_and_the_bare_client_on_every_request(tmp_path: Path) -> None:
    needs("hydragent.runner")
    record = run_benchmark("p1_scale.py", tmp_path / "p1s.json")
    (result,) = record["results"].values()
    tasks = result["setting"]["tasks"]
    assert result["bare"]["requests"] == result["hydragent"]["requests"] == tasks
    assert result["hydragent"]["max_in_flight"] <= result["setting"]["concurrency"]
    assert result["inspect_ai"] is None  # inspect_ai runs only with --inspect-python


def test_p2_every_client_completes_its_calls(tmp_path: Path) -> None:
    needs("hydragent.models.openai")
    needs("smolagents")
    record = run_benchmark("p2_overhead.py", tmp_path / "p2.json")
    results = record["results"]
    assert set(results["median_wall_s"]) == {"hydragent", "raw openai", "smolagents"}
    assert results["server_requests"] == results["expected_requests"]


def test_p3_cold_start_checks_imports_on_the_api_path(tmp_path: Path) -> None:
    needs("hydragent.cli")
    needs("smolagents")
    record = run_benchmark("p3_cold_start.py", tmp_path / "p3.json")
    assert 'python -c "import hydragent"' in record["results"]["median_wall_s"]
    assert "hydragent run --cfg job model=openai" in record["results"]["forbidden_imported"]


def test_p4_rerun_is_served_by_the_cache(tmp_path: Path) -> None:
    needs("hydragent.runner")
    record = run_benchmark("p4_cache_replay.py", tmp_path / "p4.json")
    assert record["results"]["answers_identical"] is True


def test_p7_limits_measures_the_rate_the_redis_pair_and_the_budgets(tmp_path: Path) -> None:
    needs("hydragent.limits")
    needs("pyrate_limiter")
    record = run_benchmark("p7_limits.py", tmp_path / "p7.json")
    results = record["results"]
    assert results["limited"]["answered_429"] == 0
    assert all(run["spent_usd"] <= run["budget_usd"] for run in results["budget"])


def test_p5_local_batching_measures_both_modes(tmp_path: Path) -> None:
    needs("hydragent.models.transformers")
    needs("torch")
    record = run_benchmark("p5_local_batching.py", tmp_path / "p5.json")
    assert set(record["results"]["tokens_per_s"]) == {
        "one at a time (same model)",
        "one at a time (batching off)",
        "concurrent (micro-batched)",
    }
    assert max(record["results"]["batch_sizes"]) > 1  # the concurrent calls were batched


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_cuda(), reason="a CUDA device is present: the real run is tested instead")
def test_p6_without_cuda_says_it_skipped(tmp_path: Path) -> None:
    record = run_benchmark("p6_gpu_batching.py", tmp_path / "p6.json")
    assert record["results"] == {"skipped": True}
    assert record["targets"][0]["met"] is None


@pytest.mark.slow
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device")
def test_p6_bundled_gemma_on_cuda(tmp_path: Path) -> None:
    record = run_benchmark("p6_gpu_batching.py", tmp_path / "p6.json")
    assert record["results"]["skipped"] is False


@pytest.mark.skipif(_cuda(), reason="with CUDA, p6 loads the bundled Gemma: too slow here")
def test_run_all_runs_the_chosen_benchmarks(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run_all.py"),
            "--size",
            "tiny",
            "--only",
            "p6",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "p6_gpu_batching-tiny.json").exists()
    assert "Summary" in result.stdout


def test_run_all_rejects_an_unknown_benchmark_naming_the_valid_ones() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--only", "p9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown benchmark p9; valid: p1, p2, p3, p4, p5, p6" in result.stderr
