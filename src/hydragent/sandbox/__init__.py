"""Process-isolated execution of model-written Python.

`run_python(code)` runs one snippet in a fresh child process; `PythonSession` keeps one child per
sample so that variables persist across an agent's steps. See `_child.py` for what is enforced.
"""

from hydragent.sandbox.session import PythonSession, SandboxError, SandboxResult, run_python

Sandbox = PythonSession

__all__ = ["PythonSession", "Sandbox", "SandboxError", "SandboxResult", "run_python"]
