"""Compose-time validation: every `_target_` node against its signature, without building it.

Rules:
- A key the target's signature does not name is an error, with the valid keys listed.
- A Model (or any target taking `**kwargs`) forwards extra keys to every completion call, by
  design. There an unknown key is accepted unless it looks like a typo of a real parameter or
  of a common completion parameter (difflib), e.g. `max_tokenz` for `max_tokens`.
- Values are checked against the annotations with pydantic (`model.timeout=abc` fails).
- Missing `???` values and broken interpolations are reported with their key.
- The grammar must be enforceable by the selected model backend.
- Then every `_target_` node is built (nothing is called), except models with
  `loads_weights = True`, which are checked by signature only.
All problems are collected and raised together as one ConfigError.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from hydragent.config.problems import ConfigError
from hydragent.secrets import is_secret_key, mask_secrets

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
TYPO_CUTOFF = 0.8


class _UnusedConfigError(ValueError):
    """Every problem found in a config; the CLI prints them on one line and exits 2."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = f"{len(problems)} config errors: " if len(problems) > 1 else ""
        super().__init__(count + "; ".join(problems))

    def __reduce__(self) -> tuple[type, tuple[list[str]]]:
        """Survives pickling, so a sweep job in a joblib/submitit worker reports it intact."""
        return (type(self), (self.problems,))


@dataclass
class Parameters:
    """What a target accepts: named parameters (with annotations) and whether extras are."""

    names: dict[str, inspect.Parameter]
    required: list[str]
    accepts_extra: bool
    module_globals: dict[str, dict[str, Any]] = field(default_factory=dict)


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


_VARIADIC = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)


def _required(signature: inspect.Signature) -> list[str]:
    return [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.default is p.empty and p.kind not in _VARIADIC
    ]


_ADAPTERS: dict[tuple[int, str], Any] = {}


def _type_error(param: inspect.Parameter, owner: dict[str, Any], value: Any) -> str | None:
    """Pydantic's complaint about `value` for `param`'s annotation, or None when it fits or
    the annotation cannot be evaluated here (a TYPE_CHECKING-only name, an arbitrary class)."""
    from pydantic import TypeAdapter, ValidationError

    annotation = param.annotation
    if annotation is param.empty:
        return None
    key = (id(owner), str(annotation))
    if key not in _ADAPTERS:
        try:
            resolved = eval(annotation, owner) if isinstance(annotation, str) else annotation
            _ADAPTERS[key] = TypeAdapter(resolved)
        except Exception:
            _ADAPTERS[key] = None
    adapter = _ADAPTERS[key]
    if adapter is None:
        return None
    try:
        adapter.validate_python(value)
    except ValidationError as error:
        first = error.errors()[0]
        return str(first.get("msg", error)).split("\n")[0]
    except Exception:
        return None
    return None


def annotation_text(param: inspect.Parameter) -> str:
    annotation = param.annotation
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


# --- resolving the config ------------------------------------------------------------------


def resolve_plain(
    cfg: Any, errors: list[str], path: str = "", missing: set[str] | None = None
) -> Any:
    """The config as plain Python, resolving interpolations; each missing `???` value and each
    failed interpolation becomes an error naming its key instead of stopping at the first."""
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, DictConfig | ListConfig):
        keys = list(cfg.keys()) if isinstance(cfg, DictConfig) else list(range(len(cfg)))
        out: dict[Any, Any] | list[Any] = {} if isinstance(cfg, DictConfig) else []
        for key in keys:
            child_path = f"{path}.{key}" if path else str(key)
            if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, key):
                errors.append(f"{child_path} is required (???): set it, e.g. {child_path}=VALUE")
                if missing is not None:
                    missing.add(child_path)
                continue
            try:
                child = cfg[key]
            except OmegaConfBaseException as error:
                errors.append(f"{child_path}: {_one_line(str(error))}")
                continue
            value = resolve_plain(child, errors, child_path, missing)
            if isinstance(out, dict):
                out[key] = value
            else:
                out.append(value)
        return out
    return cfg


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


# --- checking targets ----------------------------------------------------------------------


def find_targets(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(path, node) for every mapping with a `_target_`, outermost first."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "_target_" in node:
            found.append((path, node))
        for key, value in node.items():
            found += find_targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += find_targets(value, f"{path}[{index}]")
    return found


def locate(target: str) -> Any:
    from hydra.utils import get_object

    return get_object(target)


def _is_model_class(target: Any) -> bool:
    from hydragent.models.base import Model

    return inspect.isclass(target) and issubclass(target, Model)


def check_target(
    path: str, node: dict[str, Any], target: Any, missing: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """(errors, forwarded keys) for one `_target_` node, checked against the signature."""
    params = target_parameters(target)
    name = getattr(target, "__name__", str(target))
    errors: list[str] = []
    forwarded: list[str] = []
    given = [k for k in node if k not in HYDRA_KEYS]
    known = sorted(params.names)
    completion = set(COMPLETION_PARAMETERS) if params.accepts_extra else set()
    candidates = sorted(set(known) | completion)
    for key in given:
        if key in params.names:
            continue
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=TYPO_CUTOFF)
        if params.accepts_extra and key not in COMPLETION_PARAMETERS and not close:
            forwarded.append(key)
            continue
        if params.accepts_extra and key in COMPLETION_PARAMETERS:
            forwarded.append(key)
            continue
        hint = f" (did you mean {close[0]}?)" if close else ""
        extra_note = (
            "; other keys are forwarded to every completion call"
            if (params.accepts_extra and _is_model_class(target))
            else ""
        )
        errors.append(
            f"{path}.{key} is not a parameter of {name}{hint}; valid keys: "
            f"{', '.join(known)}{extra_note}"
        )
    if not node.get("_partial_") and "_args_" not in node:
        for key in params.required:
            if key not in node and f"{path}.{key}" not in missing:
                errors.append(f"{path}.{key} is required by {name}")
    for key in given:
        param = params.names.get(key)
        value = node[key]
        if param is None and key in forwarded and key in COMPLETION_PARAMETERS:
            param = inspect.Parameter(
                key, inspect.Parameter.KEYWORD_ONLY, annotation=COMPLETION_PARAMETERS[key]
            )
        if param is None or (isinstance(value, dict) and "_target_" in value):
            continue
        if isinstance(value, list) and any(isinstance(v, dict) and "_target_" in v for v in value):
            continue
        problem = _type_error(param, params.module_globals.get(key, {}), value)
        if problem:
            shown = "" if is_secret_key(key) else f"={value!r}"
            errors.append(
                f"{path}.{key}{shown} does not fit {name}.{key}: {annotation_text(param)} "
                f"({problem})"
            )
    return errors, forwarded


def check_retry(path: str, node: dict[str, Any], target: Any) -> list[str]:
    """An ApiModel's `retry` node is validated now rather than when the model is built."""
    from pydantic import ValidationError

    from hydragent.models.base import ApiModel, RetryPolicy

    retry = node.get("retry")
    if not (inspect.isclass(target) and issubclass(target, ApiModel)) or not isinstance(
        retry, dict
    ):
        return []
    try:
        RetryPolicy(**retry)
    except ValidationError as error:
        return [f"{path}.retry.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    return []


def check_roles(path: str, node: dict[str, Any]) -> list[str]:
    from hydragent.messages import MessageRole

    errors = []
    for source, destination in (node.get("custom_role_conversions") or {}).items():
        for role in (source, destination):
            try:
                MessageRole.parse(role)
            except ValueError as error:
                errors.append(f"{path}.custom_role_conversions: {error}")
    return errors


def check_grammar(plain: dict[str, Any], model_class: Any) -> list[str]:
    from pydantic import ValidationError

    from hydragent.grammar import Grammar
    from hydragent.models import grammar_support_error

    node = plain.get("grammar")
    if node is None:
        return []
    try:
        grammar = Grammar.coerce(node)
    except (ValidationError, ValueError, TypeError) as error:
        errors = getattr(error, "errors", None)
        message = errors()[0]["msg"] if callable(errors) else str(error)
        return [f"grammar: {_one_line(message)}"]
    if grammar is None or model_class is None:
        return []
    if grammar.type not in getattr(model_class, "supported_grammars", frozenset()):
        return [grammar_support_error(model_class, grammar)]
    return []


@dataclass
class ValidationReport:
    """What validation found: the masked resolved config and notes for the user."""

    config: dict[str, Any]
    instantiated: list[str] = field(default_factory=list)
    signature_only: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)


def validate_config(cfg: Any, instantiate: bool = True) -> ValidationReport:
    """Validate a composed config (without its `hydra` node); raise ConfigError listing all
    problems. With `instantiate`, build every target except weight-loading models."""
    from omegaconf import OmegaConf, open_dict

    if "hydra" in cfg:
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    errors: list[str] = []
    missing: set[str] = set()
    plain = resolve_plain(cfg, errors, missing=missing)
    report = ValidationReport(config=mask_secrets(plain))
    targets = find_targets(plain)
    located: dict[str, Any] = {}
    for path, node in targets:
        try:
            target = locate(str(node["_target_"]))
        except Exception as error:
            errors.append(
                f"{path}._target_: cannot import {node['_target_']}: {_one_line(str(error))}"
            )
            continue
        located[path] = target
        node_errors, forwarded = check_target(path, node, target, frozenset(missing))
        errors += node_errors + check_retry(path, node, target) + check_roles(path, node)
        report.forwarded += [f"{path}.{key}" for key in forwarded]
    if not any(p == "grammar" or p.startswith("grammar.") for p in missing):
        errors += check_grammar(plain, located.get("model"))
    if errors:
        raise ConfigError(errors)
    if not instantiate:
        return report

    from hydra.utils import instantiate as build

    outermost = [p for p, _ in targets if not any(_inside(p, q) for q, _ in targets if q != p)]
    outermost.sort(key=lambda p: p not in RUNTIME_PROVIDED.values())  # judges first
    built: dict[str, Any] = {}
    for path in outermost:
        inner = [t for p, t in located.items() if p == path or _inside(p, path)]
        provided = _runtime_arguments(path, plain, located, built)
        if provided is None or any(getattr(t, "loads_weights", False) for t in inner):
            report.signature_only.append(path)
            continue
        node = OmegaConf.select(cfg, path)
        try:
            with open_dict(node):
                built[path] = build(node, **provided)
        except Exception as error:
            cause = error.__cause__ or error
            name = getattr(located.get(path), "__name__", path)
            errors.append(f"{path}: building {name} failed: {_one_line(str(cause))}")
            continue
        report.instantiated.append(path)
    if errors:
        raise ConfigError(errors)
    return report


# Constructor parameters the runner fills with another built node (see runner/build.py):
# a scorer taking `judge` gets the model built from the top-level `judge` node.
RUNTIME_PROVIDED = {"judge": "judge"}


def _runtime_arguments(
    path: str, plain: dict[str, Any], located: dict[str, Any], built: dict[str, Any]
) -> dict[str, Any] | None:
    """Arguments the runner would pass when building `path`; None when one of them is only
    signature-checked (a weight-loading judge), so `path` cannot be built either."""
    node = _select(plain, path)
    target = located.get(path)
    if target is None or not isinstance(node, dict):
        return {}
    names = target_parameters(target).names
    provided: dict[str, Any] = {}
    for parameter, source in RUNTIME_PROVIDED.items():
        if parameter in names and parameter not in node and plain.get(source) is not None:
            if source not in built:
                return None
            provided[parameter] = built[source]
    return provided


def _select(plain: dict[str, Any], path: str) -> Any:
    node: Any = plain
    for part in re.split(r"\.|\[", path):
        part = part.rstrip("]")
        node = node[int(part)] if isinstance(node, list) else node.get(part)
        if node is None:
            return None
    return node


def _inside(path: str, outer: str) -> bool:
    return path.startswith(outer + ".") or path.startswith(outer + "[")
