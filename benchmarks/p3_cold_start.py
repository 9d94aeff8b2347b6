"""P3 cold start: how long a fresh process takes before it is useful, and what it imports.

Times, each a fresh process (median of several): `hydragent run --cfg job model=openai`,
`python -c "import hydragent"`, `python -c "import smolagents"`, and an empty interpreter for
reference. Then, with Python's own import profiler (PYTHONPROFILEIMPORTTIME), it checks that no
torch, transformers or litellm module is imported on the API path: by `import hydragent`, by the
`--cfg job` command, and by a real `hydragent run model=openai` against a local server.

Targets: the CLI command <= 1.0 s, `import hydragent` <= 0.15 s, no forbidden import.
Run: python benchmarks/p3_cold_start.py [--size tiny|full] [--repeats R]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Target, hydragent_executable, median, parser, print_table, timed, write_record
from latency_server import LatencyServer

NAME = "p3_cold_start"
FORBIDDEN = ("torch", "transformers", "litellm")
SIZES = {"tiny": {"repeats": 1}, "full": {"repeats": 7}}


def commands() -> dict[str, list[str]]:
    python = sys.executable
    return {
        "hydragent run --cfg job model=openai": [
            hydragent_executable(),
            "run",
            "--cfg",
            "job",
            "model=openai",
        ],
        'python -c "import hydragent"': [python, "-c", "import hydragent"],
        'python -c "import smolagents"': [python, "-c", "import smolagents"],
        'python -c "pass"': [python, "-c", "pass"],
    }


def run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    merged = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=merged, timeout=300)


def wall_time(command: list[str]) -> float:
    seconds, result = timed(lambda: run(command))
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")
    return seconds


def imported_modules(command: list[str]) -> tuple[set[str], list[tuple[int, str]], str]:
    """Top-level packages a command imports, its slowest imports (cumulative us), and errors."""
    result = run(command, {"PYTHONPROFILEIMPORTTIME": "1"})
    packages: set[str] = set()
    slowest: list[tuple[int, str]] = []
    other: list[str] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:"):
            other.append(line)
            continue
        fields = line.split("|")
        name = fields[-1].strip()
        if not fields[1].strip().isdigit():
            continue
        packages.add(name.split(".")[0])
        if not fields[-1].startswith("   "):  # a top-level import of the command itself
            slowest.append((int(fields[1].strip()), name))
    error = "" if result.returncode == 0 else "\n".join(other)[-800:]
    return packages, sorted(slowest, reverse=True)[:8], error


def main() -> None:
    args = parser(NAME, __doc__.splitlines()[0]).parse_args()
    repeats = args.repeats or SIZES[args.size]["repeats"]
    timed_commands = commands()

    walls: dict[str, list[float]] = {label: [] for label in timed_commands}
    for _ in range(repeats):
        for label, command in timed_commands.items():
            walls[label].append(wall_time(command))
    medians = {label: median(values) for label, values in walls.items()}
    print_table(
        f"P3 cold start: median of {repeats} fresh processes",
        ["command", "median s", "min s", "max s"],
        [[label, medians[label], min(v), max(v)] for label, v in walls.items()],
    )

    with LatencyServer(latency_ms=0) as server, tempfile.TemporaryDirectory() as folder:
        real_run = [
            hydragent_executable(),
            "run",
            "model=openai",
            f"model.api_base={server.base_url}",
            "model.model_id=latency",
            "model.api_key=sk-bench",
            "task=smoke",
            "agent=direct",
            f"hydra.run.dir={Path(folder) / 'run'}",
        ]
        checks = {
            "import hydragent": [sys.executable, "-c", "import hydragent"],
            "hydragent run --cfg job model=openai": timed_commands[
                "hydragent run --cfg job model=openai"
            ],
            "hydragent run model=openai task=smoke (real run)": real_run,
        }
        imports = {label: imported_modules(command) for label, command in checks.items()}

    rows = []
    forbidden_found: dict[str, list[str]] = {}
    for label, (packages, _slowest, error) in imports.items():
        found = sorted(p for p in FORBIDDEN if p in packages)
        forbidden_found[label] = found
        rows.append(
            [
                label,
                ", ".join(found) or "none",
                "yes" if "openai" in packages else "no",
                "" if not error else "FAILED",
            ]
        )
    print_table(
        "P3 imports on the API path (PYTHONPROFILEIMPORTTIME)",
        ["command", "forbidden imported", "openai imported", "status"],
        rows,
    )
    notes = [f"{label} failed: {error}" for label, (_, _, error) in imports.items() if error]
    cli = "hydragent run --cfg job model=openai"
    targets = [
        Target(f"{cli} wall s", medians[cli], 1.0, False),
        Target(
            'python -c "import hydragent" wall s',
            medians['python -c "import hydragent"'],
            0.15,
            False,
        ),
        Target(
            "commands importing torch/transformers/litellm",
            float(sum(1 for found in forbidden_found.values() if found)),
            0,
            False,
        ),
    ]
    write_record(
        NAME,
        args,
        {"repeats": repeats, "forbidden": list(FORBIDDEN)},
        {
            "median_wall_s": medians,
            "all_wall_s": walls,
            "ratio_import_hydragent_to_smolagents": medians['python -c "import hydragent"']
            / medians['python -c "import smolagents"'],
            "forbidden_imported": forbidden_found,
            "slowest_top_level_imports_us": {
                label: slowest for label, (_, slowest, _) in imports.items()
            },
            "import_check_errors": {
                label: error for label, (_, _, error) in imports.items() if error
            },
        },
        targets,
        notes,
    )


if __name__ == "__main__":
    main()
