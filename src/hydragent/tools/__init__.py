"""Tools an agent can call, and `build_tools` which turns the `tools` config node into them."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from hydragent.tools.base import FunctionTool, Tool, ToolArgumentError, tool
from hydragent.tools.builtin import CalculatorTool, FinalAnswerTool, PythonTool

__all__ = [
    "CalculatorTool",
    "FinalAnswerTool",
    "FunctionTool",
    "PythonTool",
    "Tool",
    "ToolArgumentError",
    "build_tools",
    "tool",
]


def build_tools(cfg_tools: Any) -> list[Tool]:
    """Tools from the `tools` node: a mapping `name -> {_target_: ..., **kwargs}` (what
    `tools=[calculator,python]` composes), a list of such nodes, or ready Tool objects.

    `_target_` may name a Tool subclass (built with the other keys), a Tool instance (e.g. a
    `@tool` function), a plain function (wrapped with `@tool`) or a factory returning a Tool.
    """
    if cfg_tools is None:
        return []
    if _is_mapping(cfg_tools) and "_target_" not in cfg_tools:
        nodes: Iterable[tuple[str, Any]] = ((str(k), v) for k, v in cfg_tools.items())
    elif _is_mapping(cfg_tools) or isinstance(cfg_tools, Tool):
        nodes = [("tools", cfg_tools)]
    else:
        nodes = ((f"tools[{i}]", node) for i, node in enumerate(cfg_tools))
    built = [_build_one(key, node) for key, node in nodes]
    names = [t.name for t in built]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"tools: more than one tool is named {', '.join(duplicates)}")
    return built


def _is_mapping(value: Any) -> bool:
    from omegaconf import DictConfig

    return isinstance(value, Mapping | DictConfig)


def _build_one(key: str, node: Any) -> Tool:
    if isinstance(node, Tool):
        return node
    if not _is_mapping(node) or "_target_" not in node:
        raise ValueError(f"{key}: a tool needs a `_target_` (a Tool class or @tool function)")
    from hydra.utils import get_object
    from omegaconf import OmegaConf

    params = (
        OmegaConf.to_container(node, resolve=True) if not isinstance(node, Mapping) else dict(node)
    )
    target_path = params.pop("_target_")
    try:
        target = get_object(target_path)
    except Exception as error:
        raise ValueError(f"{key}: cannot import _target_ {target_path!r}: {error}") from None
    if isinstance(target, Tool):
        built: Any = target
    elif inspect.isclass(target) and issubclass(target, Tool):
        built = target(**params)
    elif callable(target) and not params and _looks_like_tool_function(target):
        built = tool(target)
    else:
        built = target(**params)
    if not isinstance(built, Tool):
        raise ValueError(f"{key}: _target_ {target_path!r} did not give a Tool")
    return built


def _looks_like_tool_function(function: Any) -> bool:
    """A documented function whose result is not itself a Tool (that would be a factory)."""
    hints = getattr(function, "__annotations__", {})
    return bool(inspect.getdoc(function)) and hints.get("return") not in (Tool, "Tool")
