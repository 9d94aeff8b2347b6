"""The Tool contract (smolagents-compatible) and the `@tool` decorator."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from hydragent.models.base import get_tool_json_schema

#: smolagents' input/output type names, and the Python types that check them.
TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "array": (list, tuple),
    "object": (dict,),
}
PYTHON_TO_JSON = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    tuple: "array",
    dict: "object",
    type(None): "null",
}


class ToolArgumentError(ValueError):
    """A call with arguments that do not fit the tool's inputs; shown to the model."""


class Tool:
    """A named function the model can call: `inputs` uses smolagents' format
    `{arg: {"type": ..., "description": ..., "nullable"?: bool}}`."""

    name: str = ""
    description: str = ""
    inputs: dict[str, dict[str, Any]] = {}
    output_type: str = "any"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Like smolagents: `tool(a=1)`, `tool(1)` or `tool({"a": 1})` with one dict argument."""
        if (
            len(args) == 1
            and not kwargs
            and isinstance(args[0], Mapping)
            and (set(args[0]) <= set(self.inputs) and "object" not in self._first_input_type())
        ):
            kwargs, args = dict(args[0]), ()
        return self.forward(*args, **kwargs)

    def call(self, arguments: Any) -> Any:
        """Validate model-given arguments (a dict, or a bare value for one-input tools) and run."""
        return self.forward(**self.validate_arguments(arguments))

    def validate_arguments(self, arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, Mapping):
            if len(self.inputs) != 1:
                raise ToolArgumentError(
                    f"tool {self.name!r} takes named arguments {self._signature()}, "
                    f"got {arguments!r}"
                )
            arguments = {next(iter(self.inputs)): arguments}
        unknown = sorted(set(arguments) - set(self.inputs))
        if unknown:
            raise ToolArgumentError(
                f"tool {self.name!r} got unknown argument(s) {', '.join(unknown)}; "
                f"it takes {self._signature()}"
            )
        for name, spec in self.inputs.items():
            if name not in arguments:
                if not spec.get("nullable"):
                    raise ToolArgumentError(
                        f"tool {self.name!r} is missing argument {name!r}; "
                        f"it takes {self._signature()}"
                    )
                continue
            value = arguments[name]
            expected = TYPE_CHECKS.get(spec.get("type", "any"))
            if value is None and spec.get("nullable"):
                continue
            if expected and not _fits(value, expected, spec.get("type")):
                raise ToolArgumentError(
                    f"tool {self.name!r}: argument {name!r} must be {spec['type']}, "
                    f"got {type(value).__name__} {value!r}"
                )
            if "enum" in spec and value not in spec["enum"]:
                raise ToolArgumentError(
                    f"tool {self.name!r}: argument {name!r} must be one of "
                    f"{', '.join(map(repr, spec['enum']))}, got {value!r}"
                )
        return dict(arguments)

    def json_schema(self) -> dict[str, Any]:
        return get_tool_json_schema(self)

    def _signature(self) -> str:
        return "(" + ", ".join(f"{n}: {s.get('type', 'any')}" for n, s in self.inputs.items()) + ")"

    def _first_input_type(self) -> str:
        return next(iter(self.inputs.values()), {}).get("type", "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _fits(value: Any, expected: tuple[type, ...], type_name: str | None) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    if type_name == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, expected)


class FunctionTool(Tool):
    """A tool around a plain function, built by `@tool`."""

    def __init__(
        self,
        function: Callable[..., Any],
        name: str,
        description: str,
        inputs: dict[str, dict[str, Any]],
        output_type: str,
    ) -> None:
        self.function = function
        self.name = name
        self.description = description
        self.inputs = inputs
        self.output_type = output_type

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


def tool(function: Callable[..., Any]) -> FunctionTool:
    """Build a Tool from a function's type hints and its Google-style docstring.

    The docstring's first paragraph is the description; its `Args:` section describes each
    argument. Every argument needs a type hint and a description, as the model sees both.
    """
    hints = typing.get_type_hints(function)
    doc = inspect.getdoc(function) or ""
    description, arg_docs = _parse_docstring(doc)
    if not description:
        raise ValueError(f"@tool {function.__name__}: add a docstring describing the tool")
    inputs: dict[str, dict[str, Any]] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name not in hints:
            raise ValueError(f"@tool {function.__name__}: argument {name!r} needs a type hint")
        if name not in arg_docs:
            raise ValueError(
                f"@tool {function.__name__}: describe argument {name!r} in the docstring's Args:"
            )
        json_type, nullable = _json_type(hints[name])
        spec: dict[str, Any] = {"type": json_type, "description": arg_docs[name]}
        if nullable or parameter.default is not inspect.Parameter.empty:
            spec["nullable"] = True
        inputs[name] = spec
    output_type, _ = _json_type(hints.get("return", Any))
    return FunctionTool(function, function.__name__, description, inputs, output_type)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    sections = re.split(r"\n\s*(?=(?:Args|Arguments|Returns|Raises|Examples?):\s*\n)", doc)
    description = sections[0].strip()
    arg_docs: dict[str, str] = {}
    for section in sections[1:]:
        header, _, body = section.strip().partition("\n")
        if header.rstrip(":") not in ("Args", "Arguments"):
            continue
        current = None
        for line in body.splitlines():
            match = re.match(r"\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", line)
            if match and (current is None or _indent(line) <= _indent_of_first(body)):
                current = match.group(1)
                arg_docs[current] = match.group(2).strip()
            elif current and line.strip():
                arg_docs[current] += " " + line.strip()
    return description, arg_docs


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indent_of_first(body: str) -> int:
    return next((_indent(line) for line in body.splitlines() if line.strip()), 0)


def _json_type(hint: Any) -> tuple[str, bool]:
    """smolagents' type name for a hint, and whether None is allowed."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(hint))
        name, _ = _json_type(members[0]) if len(members) == 1 else ("any", False)
        return name, nullable
    if origin is typing.Literal:
        return PYTHON_TO_JSON.get(type(typing.get_args(hint)[0]), "any"), False
    return PYTHON_TO_JSON.get(origin or hint, "any"), False
