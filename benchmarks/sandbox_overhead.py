"""Sandbox overhead: what each kernel isolation costs next to the process sandbox (issue #12).

For every sandbox option this machine offers (process, landlock, bwrap), side by side:
- start: a new session until its first trivial step has returned: what a sample of agent=code
  pays once, and what every tools=python call pays;
- step: one code-agent step in a warm session (median), and its overhead over process;
- humaneval: HumanEval/0 scored as scorer=code_exec scores it (since issue #20 two fresh
  sandboxes per program: the candidate with the tests, recording; the tests alone, replaying).

Targets (bwrap, what sandbox=auto picks here): start <= 150 ms; step <= process + 10 ms.
Run: python benchmarks/sandbox_overhead.py [--size tiny|full] [--repeats R]
"""

from __future__ import annotations

import time

from common import Target, median, parser, print_table, write_record

from hydragent.sandbox import PythonSession, SandboxUnavailable, resolve
from hydragent.scorers.code import CodeExecScorer
from hydragent.tasks.base import Sample

NAME = "sandbox_overhead"
SIZES = {"tiny": {"repeats": 3, "steps": 5}, "full": {"repeats": 30, "steps": 100}}
KINDS = ("process", "landlock", "bwrap")
AGENT_STEP = """
numbers = [3, 1, 4, 1, 5, 9, 2, 6]
total = sum(n * n for n in numbers)
print(f"total={total}")
total
"""
# HumanEval/0, scored as code_exec scores it (since issue #20: a recording run of the candidate
# and the tests, then a fresh replay run of the tests against the recorded values).
PROMPT = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold."""
'''
SOLUTION = """    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
"""
TEST = """
def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False
    assert candidate([1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False
"""
SAMPLE = Sample(
    id="HumanEval/0",
    input=PROMPT,
    target=None,
    metadata={"prompt": PROMPT, "test": TEST, "entry_point": "has_close_elements"},
)


def measure(kind: str, repeats: int, steps: int) -> dict[str, float]:
    spec = resolve({"kind": kind})
    scorer = CodeExecScorer(sandbox=spec)
    starts, step_times, programs = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        with PythonSession(sandbox=spec) as session:
            assert session.run("1").ok
            starts.append(time.perf_counter() - started)
            for _ in range(steps):
                began = time.perf_counter()
                result = session.run(AGENT_STEP)
                step_times.append(time.perf_counter() - began)
                assert result.value == "173", result
        began = time.perf_counter()
        verdict = scorer.score(SOLUTION, SAMPLE)
        programs.append(time.perf_counter() - began)
        assert verdict == {"pass@1": 1.0}, verdict
    return {
        "start_ms": 1000 * median(starts),
        "step_ms": 1000 * median(step_times),
        "humaneval_ms": 1000 * median(programs),
    }


def main() -> None:
    args = parser(NAME, __doc__.splitlines()[0]).parse_args()
    size = SIZES[args.size]
    repeats = args.repeats or size["repeats"]
    results: dict[str, dict[str, float]] = {}
    notes = []
    for kind in KINDS:
        try:
            results[kind] = measure(kind, repeats, size["steps"])
        except SandboxUnavailable as error:
            notes.append(f"{kind} not measured: {error}")
    base = results["process"]
    rows = []
    for kind, figures in results.items():
        figures["step_overhead_ms"] = figures["step_ms"] - base["step_ms"]
        rows.append(
            [
                kind,
                figures["start_ms"],
                figures["start_ms"] / base["start_ms"],
                figures["step_ms"],
                figures["step_overhead_ms"],
                figures["humaneval_ms"],
                figures["humaneval_ms"] / base["humaneval_ms"],
            ]
        )
    header = [
        "sandbox",
        "start ms",
        "x process",
        "step ms",
        "step +ms",
        "humaneval ms",
        "x process",
    ]
    print_table(f"sandbox overhead (medians, {repeats} sessions)", header, rows)
    bwrap = results.get("bwrap")
    targets = [
        Target(
            "bwrap session start (ms)",
            bwrap and bwrap["start_ms"],
            150,
            higher_is_better=False,
        ),
        Target(
            "bwrap step overhead over process (ms)",
            bwrap and bwrap["step_overhead_ms"],
            10,
            higher_is_better=False,
        ),
    ]
    params = {"repeats": repeats, "steps": size["steps"], "kinds": list(results)}
    write_record(NAME, args, params, results, targets, notes)


if __name__ == "__main__":
    main()
