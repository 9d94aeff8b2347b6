"""benchmarks/sandbox_overhead.py keeps working: at its tiny size it measures every sandbox
option this machine offers, side by side, and records its targets (timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "sandbox_overhead.py"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")
def test_the_sandbox_benchmark_compares_each_option_with_process(tmp_path: Path) -> None:
    out = tmp_path / "sandbox.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--size", "tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    record = json.loads(out.read_text())
    assert "process" in record["results"]
    for figures in record["results"].values():
        assert {"start_ms", "step_ms", "step_overhead_ms", "humaneval_ms"} <= set(figures)
    assert [t["name"] for t in record["targets"]] == [
        "bwrap session start (ms)",
        "bwrap step overhead over process (ms)",
    ]
    assert "x process" in result.stdout
