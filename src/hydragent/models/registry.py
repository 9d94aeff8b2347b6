"""The registered backends, found by their declarations, and the questions config/ and the
runner ask about them.

Every module of `hydragent.models` that sets `BACKEND` (a `BackendSpec`) is a backend: adding
one is adding that module and its conf/model YAML, nothing else. Discovery imports the
backend modules (never their client libraries, which they import lazily) on the first
question, so `import hydragent` stays light.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

from hydragent.models.spec import UNIVERSAL_HELPERS, BackendSpec, declaration_of


def _module_names() -> list[str]:
    import hydragent.models as package

    return [
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.ispkg and not info.name.startswith("_")
    ]


@functools.cache
def backends() -> dict[str, BackendSpec]:
    """conf/model option -> declaration, for every backend module."""
    found: dict[str, BackendSpec] = {}
    for name in _module_names():
        spec = getattr(importlib.import_module(name), "BACKEND", None)
        if isinstance(spec, BackendSpec):
            found[spec.key] = spec
    return found


def backend_class(key: str) -> type:
    """The class behind a config option name such as `openai`."""
    try:
        return backends()[key].model
    except KeyError:
        raise ValueError(f"unknown backend {key!r}; valid: {', '.join(backends())}") from None


def defining_module(name: str) -> str | None:
    """The module of `hydragent.models` that defines the class or alias `name`, read from the
    sources so that only that one module is imported (`hydragent.OpenAIServerModel`)."""
    import hydragent.models as package

    pattern = re.compile(rf"^(class {re.escape(name)}\b|{re.escape(name)} = )", re.M)
    for module in _module_names():
        path = Path(package.__path__[0]) / f"{module.rsplit('.', 1)[1]}.py"
        try:
            if pattern.search(path.read_text(encoding="utf-8")):
                return module
        except OSError:  # installed without sources: ask the declarations instead
            return next(
                (s.model.__module__ for s in backends().values() if s.model.__name__ == name),
                None,
            )
    return None


# --- helper groups ---------------------------------------------------------------------------


def helper_groups() -> tuple[str, ...]:
    """Every helper group: those of every model, then those some backends declare."""
    declared = {group for spec in backends().values() for group in spec.helpers}
    return (*UNIVERSAL_HELPERS, *sorted(declared))


def backends_for(group: str) -> tuple[str, ...] | None:
    """The backends (conf/model names) a helper group fits; None: every model."""
    if group in UNIVERSAL_HELPERS:
        return None
    return tuple(key for key, spec in backends().items() if group in spec.helpers)


def fits(group: str, model_cls: type) -> bool:
    """Whether a helper group applies to a backend class (or a user's subclass of one)."""
    if group in UNIVERSAL_HELPERS:
        return True
    spec = declaration_of(model_cls)
    return spec is not None and group in spec.helpers


# --- clients, extras, fixes ------------------------------------------------------------------


def client_of(model_cls: type) -> tuple[str, str] | None:
    """(module, class) of the client a backend passes `client_kwargs` to, if it has one."""
    spec = declaration_of(model_cls)
    if spec is None or spec.client is None:
        return None
    module, _, name = spec.client.partition(":")
    return module, name


def extra_for_module(module: str) -> str | None:
    """The pip extra that installs an import name, among the backends' extras."""
    return next((s.extra for s in backends().values() if module in s.modules), None)


def backend_fix(text: str) -> str | None:
    """A backend's own fix for an error message (lower-cased), where one declares it."""
    for spec in backends().values():
        for fragment, fix in spec.fixes.items():
            if fragment in text:
                return fix
    return None


def grammar_support_error(model_cls: type, grammar: Any) -> str:
    """The one-line error for a backend that cannot enforce `grammar`, naming those that can."""
    able = [key for key, spec in backends().items() if grammar.type in spec.grammars]
    return (
        f"grammar={grammar.type} cannot be enforced by {model_cls.__name__}; "
        f"backends that can: {', '.join(able) or 'none'}"
    )
