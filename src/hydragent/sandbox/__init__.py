"""Isolated execution of model-written Python.

`resolve(cfg.sandbox)` turns the `sandbox=` config node into a `SandboxSpec` (bwrap, landlock or
the unsafe process guard), failing closed with `SandboxUnavailable`. `run_python(code)` runs one
snippet in a fresh child; `PythonSession` keeps one child per sample so that variables persist
across an agent's steps. See `isolation.py` for what each option enforces.
"""

from hydragent.sandbox.isolation import (
    SandboxConfig,
    SandboxSpec,
    SandboxUnavailable,
    as_spec,
    resolve,
)
from hydragent.sandbox.session import PythonSession, SandboxError, SandboxResult, run_python

Sandbox = PythonSession

__all__ = [
    "PythonSession",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxResult",
    "SandboxSpec",
    "SandboxUnavailable",
    "as_spec",
    "resolve",
    "run_python",
]
