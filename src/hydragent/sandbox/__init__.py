"""Isolated execution of model-written Python.

`resolve(cfg.sandbox)` turns the `sandbox=` config node into a `SandboxSpec` (bwrap, landlock or
the unsafe process guard), failing closed with `SandboxUnavailable`. `run_python(code)` runs one
snippet in a fresh child; `PythonSession(sandbox=spec)` keeps one child per sample so that
variables persist across an agent's steps. See `isolation.py` for what each option enforces.
Imports go one way: choice -> session -> isolation -> bwrap -> paths; the session also uses
protocol, guards and seccomp (-> syscalls). No module imports one above it.
"""

from hydragent.sandbox.choice import SandboxUnavailable, as_spec, resolve, run_python
from hydragent.sandbox.isolation import SandboxConfig, SandboxSpec
from hydragent.sandbox.protocol import SandboxError, SandboxResult
from hydragent.sandbox.session import PythonSession

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
