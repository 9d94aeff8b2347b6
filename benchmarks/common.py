"""What every benchmark script shares: arguments, medians, the printed table and the JSON record."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class Target:
    """One acceptance target: `value` compared with `threshold` in the stated direction."""

    name: str
    value: float | None
    threshold: float
    higher_is_better: bool = True
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        if self.higher_is_better:
            return self.value >= self.threshold
        return self.value <= self.threshold

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        value = "n/a" if self.value is None else f"{self.value:.3g}"
        verdict = {True: "MET", False: "MISSED", None: "NOT RUN"}[self.met]
        return f"{self.name}: {value} (target {sign} {self.threshold:g}) {verdict}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """The switches every script has; scripts add their own sizes."""
    result = argparse.ArgumentParser(prog=name, description=description)
    result.add_argument(
        "--size",
        choices=("tiny", "full"),
        default="full",
        help="tiny: seconds-long smoke run (the test suite uses it); full: the issue's sizes",
    )
    result.add_argument("--repeats", type=int, default=None, help="repetitions (median taken)")
    result.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the JSON record (default {RESULTS_DIR}/{name}[-tiny].json)",
    )
    return result


def out_path(name: str, args: argparse.Namespace) -> Path:
    if args.out is not None:
        return Path(args.out)
    suffix = "" if args.size == "full" else f"-{args.size}"
    return RESULTS_DIR / f"{name}{suffix}.json"


def machine() -> dict[str, Any]:
    """Enough about the host to compare figures across runs honestly."""
    memory_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 1024**3, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": load,
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call, and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table, readable in a terminal and in a CI log."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_record(
    name: str,
    args: argparse.Namespace,
    params: dict[str, Any],
    results: dict[str, Any],
    targets: Sequence[Target],
    notes: Sequence[str] = (),
) -> Path:
    """Print the verdicts and write the JSON record; returns its path."""
    for target in targets:
        print(target.describe())
    for note in notes:
        print(f"note: {note}")
    record = {
        "benchmark": name,
        "size": args.size,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "params": params,
        "results": results,
        "targets": [target.as_dict() for target in targets],
        "notes": list(notes),
    }
    path = out_path(name, args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def hydragent_executable() -> str:
    """The `hydragent` console script of the interpreter running this benchmark."""
    candidate = Path(sys.executable).parent / "hydragent"
    return str(candidate) if candidate.exists() else "hydragent"
