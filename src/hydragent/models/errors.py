"""The model layer's own errors: a missing extra (raised at use, or reported by validate), and
a server reply that is not what its protocol promises."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


class MalformedResponseError(ValueError):
    """The server answered 2xx with a body that is not a valid completion."""


class IncompleteStreamError(ConnectionError):
    """The stream ended before the server said it had finished (no finish_reason)."""


def _install_line(backend: str, extra: str) -> str:
    return f"{backend} needs the '{extra}' extra: pip install 'hydragent[{extra}]'"


def _declared(model: Any) -> tuple[str, Any]:
    cls = model if isinstance(model, type) else type(model)
    return cls.__name__, getattr(cls, "declaration", None)


def missing_extra(model: Any) -> ImportError:
    """The ImportError a backend (class or instance) raises when its client library is
    missing, naming the extra its declaration gives."""
    name, spec = _declared(model)
    return ImportError(_install_line(name, spec.extra if spec and spec.extra else "all"))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec: None there means "blocked"
        return sys.modules.get(module) is not None


def extra_problems(model: Any, *modules: str, who: str | None = None) -> list[tuple[str, str]]:
    """[("_target_", how to install)] when one of `modules` (by default, those the model's
    declaration names) cannot be imported, else []: what `validate` reports where a run
    would raise `missing_extra`. `who` names the part that needs them (the bundled Gemma)."""
    name, spec = _declared(model)
    if spec is None or spec.extra is None:
        return []
    absent = [module for module in modules or spec.modules if not _installed(module)]
    return [("_target_", _install_line(who or name, spec.extra))] if absent else []
