"""Run every benchmark (P1..P6, sandbox), each in its own process; print each target's verdict.

`make bench` runs this. A missed target is a finding, not a crash: the exit status is 1 only
when a script itself failed. Records land in benchmarks/results/ (or --out-dir).
Run: python benchmarks/run_all.py [--size tiny|full] [--only p1,p3] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, RESULTS_DIR

SCRIPTS = {
    "p1": "p1_runner.py",
    "p2": "p2_overhead.py",
    "p3": "p3_cold_start.py",
    "p4": "p4_cache_replay.py",
    "p5": "p5_local_batching.py",
    "p6": "p6_gpu_batching.py",
    "p7": "p7_limits.py",
    "p1s": "p1_scale.py",
    "sandbox": "sandbox_overhead.py",
}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--size", choices=("tiny", "full"), default="full")
    cli.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated, e.g. p1,p4")
    cli.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = cli.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCRIPTS]
    if unknown:
        cli.error(f"unknown benchmark {', '.join(unknown)}; valid: {', '.join(SCRIPTS)}")

    failed: list[str] = []
    verdicts: list[str] = []
    for name in chosen:
        script = SCRIPTS[name]
        suffix = "" if args.size == "full" else f"-{args.size}"
        out = args.out_dir / f"{Path(script).stem}{suffix}.json"
        out.unlink(missing_ok=True)
        print(f"\n=== {name}: {script} --size {args.size}", flush=True)
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(BENCH_DIR / script), "--size", args.size, "--out", str(out)],
            cwd=BENCH_DIR.parent,
        )
        print(f"=== {name} took {time.perf_counter() - start:.1f} s", flush=True)
        if result.returncode != 0 or not out.exists():
            failed.append(name)
            verdicts.append(f"{name}: SCRIPT FAILED (exit {result.returncode})")
            continue
        for target in json.loads(out.read_text())["targets"]:
            verdict = {True: "MET", False: "MISSED", None: "NOT RUN"}[target["met"]]
            value = "n/a" if target["value"] is None else f"{target['value']:.3g}"
            sign = ">=" if target["higher_is_better"] else "<="
            verdicts.append(
                f"{name}: {target['name']}: {value} (target {sign} {target['threshold']:g}) "
                f"{verdict}"
            )

    print("\nSummary")
    for line in verdicts:
        print(f"  {line}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
