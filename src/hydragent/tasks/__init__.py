"""Tasks (`task=`): the datasets a run iterates over."""

from __future__ import annotations

from hydragent.tasks.base import Problem, Sample, Task, TaskDataError, rows_to_samples
from hydragent.tasks.files import BuiltinTask, FileTask, HFDatasetTask
from hydragent.tasks.humaneval import HumanEvalTask

__all__ = [
    "BuiltinTask",
    "FileTask",
    "HFDatasetTask",
    "HumanEvalTask",
    "Problem",
    "Sample",
    "Task",
    "TaskDataError",
    "rows_to_samples",
]
