"""`_target_` nodes checked against their constructor's signature, without building them.

- A key the signature does not name is an error, with the valid keys and the nearest name.
- A Model forwards extra keys to every completion call, by design: there an unknown key is
  accepted (a provider-specific field, listed by `validate`) unless it looks like a typo of a
  real parameter or of a common completion parameter (`max_tokenz`).
- An agent forwards only the common completion parameters; any other key is an error.
- Values are checked against the annotations with pydantic (`model.timeout=abc` fails).
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from hydragent.config.problems import nearest, shown

HYDRA_KEYS = frozenset({"_target_", "_args_", "_partial_", "_convert_", "_recursive_"})

# Keyword arguments that completion APIs commonly take: forwarded, type-checked, and used to
# spot typos. `Any` where providers disagree on the shape.
COMPLETION_PARAMETERS: dict[str, Any] = {
    "max_tokens": int, "max_completion_tokens": int, "max_new_tokens": int,
    "temperature": float, "top_p": float, "top_k": int, "min_p": float, "n": int, "seed": int,
    "stop": list[str] | str, "presence_penalty": float, "frequency_penalty": float,
    "repetition_penalty": float, "logprobs": bool, "top_logprobs": int, "timeout": float,
    "logit_bias": dict[str, float], "reasoning_effort": str, "tool_choice": Any,
    "parallel_tool_calls": bool, "user": str, "extra_body": dict[str, Any],
    "extra_headers": dict[str, str], "extra_query": dict[str, Any], "metadata": dict[str, Any],
    "response_format": dict[str, Any], "do_sample": bool, "num_beams": int,
    "stream_options": dict[str, Any], "service_tier": str, "store": bool, "thinking": Any,
}  # fmt: skip

#: what a target's `**kwargs` may take: any key (models), completion parameters (agents).
Extras = Literal["any", "completion"]


@dataclass
class Parameters:
    """What a target accepts: named parameters (with annotations) and whether extras are."""

    names: dict[str, inspect.Parameter]
    required: list[str]
    accepts_extra: bool
    module_globals: dict[str, dict[str, Any]] = field(default_factory=dict)


_VARIADIC = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)


def target_parameters(target: Any) -> Parameters:
    """Named parameters of a class (following `**kwargs` up the MRO) or a function."""
    if not inspect.isclass(target):
        signature = inspect.signature(target)
        names = {p.name: p for p in signature.parameters.values() if p.kind not in _VARIADIC}
        extra = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        module = vars(sys.modules.get(target.__module__, sys))
        return Parameters(names, _required(signature), extra, dict.fromkeys(names, module))

    names: dict[str, inspect.Parameter] = {}
    owners: dict[str, dict[str, Any]] = {}
    required: list[str] | None = None
    extra = True
    for klass in target.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            break
        signature = inspect.signature(init)
        params = [p for p in signature.parameters.values() if p.name != "self"]
        if required is None:
            required = _required(signature)
        for param in params:
            if param.kind not in _VARIADIC and param.name not in names:
                names[param.name] = param
                owners[param.name] = vars(sys.modules.get(klass.__module__, sys))
        extra = any(p.kind is p.VAR_KEYWORD for p in params)
        if not extra:
            break
    return Parameters(names, required or [], extra, owners)


def _required(signature: inspect.Signature) -> list[str]:
    return [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.default is p.empty and p.kind not in _VARIADIC
    ]


_ADAPTERS: dict[tuple[int, str], Any] = {}


def coerce(
    param: inspect.Parameter, owner: dict[str, Any], value: Any, arbitrary: bool = False
) -> tuple[Any, str | None]:
    """(`value` as `param`'s annotation types it, None), or (`value`, pydantic's complaint).

    The typed value is what the constructor receives (`'30'` for `timeout: float` becomes
    30.0), so what validate accepted is what runs. A value passes unchanged where the
    annotation cannot be evaluated here (a TYPE_CHECKING-only name; an arbitrary class, unless
    `arbitrary`: then a value must be an instance of it, which a YAML value never is, so a
    union such as `float | httpx.Timeout` still checks its plain members)."""
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    annotation = param.annotation
    if annotation is param.empty:
        return value, None
    key = (id(owner), str(annotation), arbitrary)
    if key not in _ADAPTERS:
        try:
            resolved = eval(annotation, owner) if isinstance(annotation, str) else annotation
            config = ConfigDict(arbitrary_types_allowed=True) if arbitrary else None
            _ADAPTERS[key] = TypeAdapter(resolved, config=config)
        except Exception:
            _ADAPTERS[key] = None
    adapter = _ADAPTERS[key]
    if adapter is None:
        return value, None
    try:
        return adapter.validate_python(value), None
    except ValidationError as error:
        return value, str(error.errors()[0].get("msg", error)).split("\n")[0]
    except Exception:
        return value, None


def annotation_text(param: inspect.Parameter) -> str:
    annotation = param.annotation
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def locate(target: str) -> Any:
    from hydra.utils import get_object

    return get_object(target)


def check_target(
    path: str,
    node: dict[str, Any],
    target: Any,
    extras: Extras = "any",
    missing: frozenset[str] = frozenset(),
) -> tuple[list[str], list[str], dict[str, Any]]:
    """(problems, forwarded keys, typed values) for one `_target_` node, checked against the
    signature. Typed values: each key the signature (or, for a forwarded completion parameter,
    COMPLETION_PARAMETERS) types, as that type; a provider-specific key passes as it is."""
    params = target_parameters(target)
    name = getattr(target, "__name__", str(target))
    problems: list[str] = []
    forwarded: list[str] = []
    typed: dict[str, Any] = {}
    given = [k for k in node if k not in HYDRA_KEYS]
    known = sorted(params.names)
    completion = set(COMPLETION_PARAMETERS) if params.accepts_extra else set()
    for key in given:
        if key in params.names:
            continue
        if params.accepts_extra and key in COMPLETION_PARAMETERS:
            forwarded.append(key)
            continue
        close = nearest(key, set(known) | completion)
        if params.accepts_extra and extras == "any" and not close:
            forwarded.append(key)
            continue
        hint = f" (did you mean {close}?)" if close else ""
        note = ""
        if params.accepts_extra:
            note = (
                "; other keys are forwarded to every completion call"
                if extras == "any"
                else "; completion parameters (temperature, max_tokens, ...) are forwarded"
            )
        problems.append(
            f"{path}.{key} is not a parameter of {name}{hint}; valid keys: {', '.join(known)}{note}"
        )
    if not node.get("_partial_") and "_args_" not in node:
        for key in params.required:
            if key not in node and f"{path}.{key}" not in missing:
                problems.append(f"{path}.{key} is required by {name}: set {path}.{key}=VALUE")
            elif isinstance(node.get(key), str) and not node[key].strip():
                problems.append(f"{path}.{key} is empty; {name} needs it: set {path}.{key}=VALUE")
    for key in given:
        param = params.names.get(key)
        value = node[key]
        if param is None and key in forwarded and key in COMPLETION_PARAMETERS:
            param = inspect.Parameter(
                key, inspect.Parameter.KEYWORD_ONLY, annotation=COMPLETION_PARAMETERS[key]
            )
        if param is None or _holds_targets(value):
            continue
        typed[key], problem = coerce(param, params.module_globals.get(key, {}), value)
        if problem:
            problems.append(
                f"{shown(f'{path}.{key}', value)} does not fit {name}.{key}: "
                f"{annotation_text(param)} ({problem})"
            )
    return problems, forwarded, typed


def _holds_targets(value: Any) -> bool:
    if isinstance(value, dict):
        return "_target_" in value
    return isinstance(value, list) and any(isinstance(v, dict) and "_target_" in v for v in value)
