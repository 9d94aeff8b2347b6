"""Render benchmark JSON records as the Markdown tables docs/benchmarks.md is made from.

Run: python benchmarks/to_markdown.py [benchmarks/results/*.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from common import RESULTS_DIR

VERDICT = {True: "met", False: "**missed**", None: "not run"}


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "n/a" if value is None else str(value)


def targets_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| benchmark | target | measured | threshold | verdict |", "|---|---|---|---|---|"]
    for record in records:
        for target in record["targets"]:
            sign = ">=" if target["higher_is_better"] else "<="
            lines.append(
                f"| {record['benchmark']} | {target['name']} | {_number(target['value'])} | "
                f"{sign} {target['threshold']:g} | {VERDICT[target['met']]} |"
            )
    return lines


def conditions(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| benchmark | date (UTC) | size | parameters | load average at the end |"]
    lines.append("|---|---|---|---|---|")
    for record in records:
        params = ", ".join(f"{k}={_number(v)}" for k, v in record["params"].items())
        load = record["machine"].get("load_average")
        lines.append(
            f"| {record['benchmark']} | {record['date']} | {record['size']} | {params} | {load} |"
        )
    return lines


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or sorted(RESULTS_DIR.glob("p*.json"))
    records = [json.loads(path.read_text()) for path in paths]
    if not records:
        sys.exit(f"no records found in {RESULTS_DIR}; run python benchmarks/run_all.py first")
    machine = records[0]["machine"]
    print(
        f"Machine: {machine['cpus']} CPUs, {machine['memory_gib']} GiB, {machine['platform']}, "
        f"Python {machine['python']}\n"
    )
    print("\n".join(targets_table(records)))
    print()
    print("\n".join(conditions(records)))


if __name__ == "__main__":
    main()
