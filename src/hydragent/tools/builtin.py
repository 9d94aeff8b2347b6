"""Built-in tools: final_answer, calculator (safe arithmetic) and python (the sandbox)."""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

from hydragent.sandbox import SandboxSpec, as_spec, run_python
from hydragent.tools.base import Tool

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPONENT = 10_000  # keeps 9**9**9 from hanging the runner
MAX_RESULT_BITS = 1_000_000  # and nested powers too: a tool runs in the runner, unbounded


class FinalAnswerTool(Tool):
    """Ends the run: its argument is the sample's answer."""

    name = "final_answer"
    description = "Provides the final answer to the task. Call it once you know the answer."
    inputs = {"answer": {"type": "any", "description": "The final answer to the task."}}
    output_type = "any"

    def __init__(self, answer_schema: dict[str, Any] | None = None) -> None:
        """`answer_schema` (a JSON schema) is what the answer must be, e.g. the task's
        `grammar=` as `Grammar.value_schema()`; servers that enforce tool schemas hold the
        answer to it."""
        if answer_schema:
            description = "The final answer to the task, as this schema requires."
            self.inputs = {"answer": {**answer_schema, "description": description}}

    def forward(self, answer: Any) -> Any:
        return answer


class CalculatorTool(Tool):
    """Arithmetic by walking the expression's syntax tree: never `eval`."""

    name = "calculator"
    description = (
        "Evaluates an arithmetic expression with + - * / // % ** and parentheses, and the "
        "functions " + ", ".join(_FUNCTIONS) + " and constants pi, e. Example: '(3 + 4) * 2'."
    )
    inputs = {"expression": {"type": "string", "description": "The expression to evaluate."}}
    output_type = "number"

    def forward(self, expression: str) -> float | int:
        try:
            tree = ast.parse(str(expression).strip(), mode="eval")
        except SyntaxError as error:
            raise ValueError(
                f"not an arithmetic expression: {expression!r} ({error.msg})"
            ) from None
        return _evaluate(tree.body)


def _evaluate(node: ast.AST) -> Any:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large (limit {MAX_EXPONENT})")
        # (9**10000)**10000 passes the exponent check and hung the runner for minutes
        if (
            isinstance(node.op, ast.Pow)
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left).bit_length() * right > MAX_RESULT_BITS
        ):
            raise ValueError(f"the result would exceed {MAX_RESULT_BITS} bits")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(arg) for arg in node.args))
    raise ValueError(
        f"unsupported element {ast.unparse(node)!r}: only numbers, arithmetic operators, "
        f"{', '.join(_FUNCTIONS)} and pi, e are allowed"
    )


class PythonTool(Tool):
    """Runs code in the sandbox (`sandbox=`: None is `sandbox=auto`, resolved at the first
    call); each call starts from a clean state."""

    name = "python"
    description = (
        "Runs Python code in a sandbox and returns what it prints and the value of its last "
        "expression. Nothing persists between calls. No network or files outside a scratch folder."
    )
    inputs = {"code": {"type": "string", "description": "The Python code to run."}}
    output_type = "string"

    def __init__(
        self,
        timeout_s: float = 10,
        memory_mb: int = 512,
        authorized_imports: list[str] | None = None,
        max_output_chars: int = 10000,
        sandbox: SandboxSpec | dict[str, Any] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.authorized_imports = None if authorized_imports is None else list(authorized_imports)
        self.max_output_chars = max_output_chars

    def forward(self, code: str) -> str:
        if not isinstance(self.sandbox, SandboxSpec):
            self.sandbox = as_spec(self.sandbox)
        result = run_python(
            code,
            sandbox=self.sandbox,
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb,
            authorized_imports=self.authorized_imports,
            max_output_chars=self.max_output_chars,
        )
        if not result.ok:
            raise RuntimeError(result.observation())
        return result.observation()
