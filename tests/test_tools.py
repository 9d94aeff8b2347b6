"""Tools: built from classes, @tool functions and config nodes; bad calls give clear errors."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from hydragent.tools import (
    CalculatorTool,
    PythonTool,
    Tool,
    ToolArgumentError,
    build_tools,
    tool,
)


@tool
def get_weather(city: str, celsius: bool = True) -> str:
    """Tells the weather in a city.

    Args:
        city: The city to look up.
        celsius: Whether to report degrees Celsius.
    """
    return f"sunny in {city}, {'20 C' if celsius else '68 F'}"


def test_tool_decorator_reads_hints_and_docstring() -> None:
    assert isinstance(get_weather, Tool)
    assert get_weather.name == "get_weather"
    assert get_weather.description == "Tells the weather in a city."
    assert get_weather.inputs == {
        "city": {"type": "string", "description": "The city to look up."},
        "celsius": {
            "type": "boolean",
            "description": "Whether to report degrees Celsius.",
            "nullable": True,
        },
    }
    assert get_weather.output_type == "string"
    assert get_weather(city="Paris") == "sunny in Paris, 20 C"
    schema = get_weather.json_schema()["function"]
    assert schema["parameters"]["required"] == ["city"]


def test_tool_decorator_demands_documented_arguments() -> None:
    def undocumented(x: int) -> int:
        """Doubles."""
        return 2 * x

    with pytest.raises(ValueError, match="describe argument 'x'"):
        tool(undocumented)


def test_bad_arguments_give_clear_errors() -> None:
    with pytest.raises(ToolArgumentError, match="missing argument 'city'"):
        get_weather.call({})
    with pytest.raises(ToolArgumentError, match="unknown argument"):
        get_weather.call({"city": "Rome", "country": "IT"})
    with pytest.raises(ToolArgumentError, match="must be string"):
        get_weather.call({"city": 3})


def test_calculator_does_arithmetic_without_eval() -> None:
    calculator = CalculatorTool()
    assert calculator.call({"expression": "(3 + 4) * 2 ** 3"}) == 56
    assert calculator.call("sqrt(16) + pi") == pytest.approx(4 + 3.14159, rel=1e-4)
    for hostile in ("__import__('os').system('id')", "open('/etc/passwd')", "9 ** 9 ** 9"):
        with pytest.raises(ValueError):
            calculator.call({"expression": hostile})


def test_python_tool_runs_in_the_sandbox() -> None:
    python = PythonTool(timeout_s=5)
    assert "42" in python.call({"code": "print(6 * 7)"})
    with pytest.raises(RuntimeError, match="sandbox blocked"):
        python.call({"code": "open('/etc/passwd').read()"})


def test_build_tools_from_the_composed_tools_node() -> None:
    node = OmegaConf.create(
        {
            "calculator": {"_target_": "hydragent.tools.CalculatorTool"},
            "python": {"_target_": "hydragent.tools.PythonTool", "timeout_s": 3},
            "weather": {"_target_": "tests.test_tools.get_weather"},
        }
    )
    tools = build_tools(node)
    assert [t.name for t in tools] == ["calculator", "python", "get_weather"]
    assert tools[1].timeout_s == 3
    assert build_tools(None) == [] and build_tools(OmegaConf.create({})) == []


def test_build_tools_names_a_bad_target() -> None:
    with pytest.raises(ValueError, match="cannot import _target_"):
        build_tools({"x": {"_target_": "no.such.module.Tool"}})
