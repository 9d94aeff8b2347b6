"""The P1-scale samples as an inspect_ai task: `inspect eval` runs what `hydragent run` runs.

Loaded only by `inspect eval` in a venv of its own: inspect_ai is no dependency of hydragent.
The tasks file, the JSONL that p1_scale writes (id, input, target), comes from the environment
because `inspect eval` passes a task file no arguments of ours.
"""

from __future__ import annotations

import os

from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.scorer import match
from inspect_ai.solver import generate

TASKS_ENV = "P1_SCALE_TASKS"


@task
def p1_scale() -> Task:
    """One model call per sample (no tools), scored locally, as hydragent's agent=direct."""
    return Task(dataset=json_dataset(os.environ[TASKS_ENV]), solver=generate(), scorer=match())
