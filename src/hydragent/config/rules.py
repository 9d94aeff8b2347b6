"""Wiring rules between config groups: what one choice requires of another.

Each rule returns one-line problems naming the key, the value, what fits and the fix. The
rules are asked by `assemble` in dry runs and real runs alike (one path, DESIGN.md §2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hydragent.config.problems import shown
from hydragent.config.schemas import check_node
from hydragent.models.registry import backends, backends_for, fits

# --- helper groups fit some backends (DESIGN.md §3) --------------------------------------
# Each backend declares the helper groups it takes (models/spec.py); the registry answers.


def helper_problems(
    chosen: Mapping[str, str], model_cls: type, model_choice: str | None
) -> list[str]:
    """`router=least_busy` with a backend that takes no router, and the like: each chosen
    helper group (group -> the setting as the user wrote it) must fit the selected backend."""
    backend = f"model={model_choice}" if model_choice else model_cls.__name__
    return [
        f"{setting} does not apply to {backend}: {group} fits only "
        f"{', '.join(f'model={n}' for n in backends_for(group) or ())}; pick one of them "
        f"or drop {setting.split('=', 1)[0]}"
        for group, setting in chosen.items()
        if not fits(group, model_cls)
    ]


# --- node shapes the signature cannot state ----------------------------------------------

ROUTING_STRATEGIES = (
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
)


class Deployment(BaseModel):
    """One entry of a router's `model_list` (LiteLLM's own keys beyond these are kept)."""

    model_config = ConfigDict(extra="allow")

    model_name: str
    litellm_params: dict[str, Any]


class RouterNode(BaseModel):
    """What `router=<strategy>` sets on a model that takes a router."""

    model_config = ConfigDict(extra="allow")

    model_list: list[Deployment] = Field(min_length=1)
    client_kwargs: dict[str, Any] = Field(default_factory=dict)


def router_problems(path: str, node: Mapping[str, Any]) -> list[str]:
    """A router model needs deployments, each naming a LiteLLM model, and a known strategy."""
    if not node.get("model_list"):
        return [
            f"{path}.model_list is empty: choose router=simple_shuffle (or least_busy, "
            f"latency_based, usage_based, cost_based) or set {path}.model_list"
        ]
    problems = check_node(path, dict(node), RouterNode)
    for index, entry in enumerate(node.get("model_list") or []):
        params = entry.get("litellm_params") if isinstance(entry, Mapping) else None
        if isinstance(params, Mapping) and not params.get("model"):
            problems.append(
                f"{path}.model_list[{index}].litellm_params.model is missing: name the "
                "LiteLLM model, e.g. openai/gpt-4o-mini"
            )
    groups = {e.get("model_name") for e in node.get("model_list") or [] if isinstance(e, Mapping)}
    if node.get("model_id") not in groups:
        problems.append(
            f"{shown(f'{path}.model_id', node.get('model_id'))} is not a model_name of "
            f"{path}.model_list; valid: {', '.join(sorted(map(str, groups)))}"
        )
    strategy = (node.get("client_kwargs") or {}).get("routing_strategy")
    if strategy is not None and strategy not in ROUTING_STRATEGIES:
        problems.append(
            f"{path}.client_kwargs.routing_strategy={strategy!r} is not a LiteLLM strategy; "
            f"valid: {', '.join(ROUTING_STRATEGIES)} (or pick router=<name>)"
        )
    return problems


def client_kwargs_problems(path: str, node: Mapping[str, Any], target: type) -> list[str]:
    """`model.client_kwargs.timout=5` is a key the client does not take, and `timeout=abc` a
    value its annotation refuses: every sample failed on the client's error. Checked when the
    client library is installed (else the missing extra is the problem)."""
    import importlib
    import inspect
    import sys

    from hydragent.config.problems import shown, unknown_key
    from hydragent.config.targets import annotation_text, coerce
    from hydragent.models.registry import client_of

    given = node.get("client_kwargs")
    client_path = client_of(target)
    if not isinstance(given, Mapping) or not given or client_path is None:
        return []
    module, name = client_path
    try:
        client = getattr(importlib.import_module(module), name)
        parameters = inspect.signature(client.__init__).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return []
    public = [n for n in parameters if n != "self" and not n.startswith("_")]
    owner = vars(sys.modules[client.__init__.__module__])
    problems = []
    for key, value in given.items():
        if key not in parameters or key == "self":
            problems.append(unknown_key(f"{path}.client_kwargs.{key}", f"{module}.{name}", public))
            continue
        typed, wrong = coerce(parameters[key], owner, value, arbitrary=True)
        if not wrong:
            given[key] = typed  # the client gets the typed value (`timeout: '30'` is 30.0)
        if wrong:
            problems.append(
                f"{shown(f'{path}.client_kwargs.{key}', value)} does not fit {module}.{name}"
                f"({key}: {annotation_text(parameters[key])}) ({wrong})"
            )
    return problems


def role_problems(path: str, node: Mapping[str, Any]) -> list[str]:
    from hydragent.messages import MessageRole

    problems = []
    conversions = node.get("custom_role_conversions")
    if conversions is None:
        return []
    if not isinstance(conversions, Mapping):
        return [f"{path}.custom_role_conversions must map role -> role, or pick roles=<preset>"]
    for source, destination in conversions.items():
        for role in (source, destination):
            try:
                MessageRole.parse(role)
            except ValueError as error:
                problems.append(f"{path}.custom_role_conversions: {error}")
    return problems


# --- agent, tools, scorers, judge --------------------------------------------------------


def takes(target: Any, parameter: str) -> bool:
    """Whether a class or function names `parameter` in its signature."""
    from hydragent.config.targets import target_parameters

    try:
        return parameter in target_parameters(target).names
    except (TypeError, ValueError):
        return False


def tools_problems(agent_cls: Any, tools: Any, choices: Mapping[str, Any]) -> list[str]:
    """Tools need an agent that calls them (`agent=direct tools=calculator` would drop them)."""
    if not tools or takes(agent_cls, "tools"):
        return []
    names = ", ".join(map(str, tools)) if isinstance(tools, Mapping) else str(tools)
    agent = choices.get("agent") or getattr(agent_cls, "__name__", "the agent")
    return [
        f"tools={choices.get('tools') or names} needs an agent that calls tools, but "
        f"agent={agent} takes none; valid: agent=tool_calling or agent=code, or tools=none"
    ]


def judge_problems(scorers: Mapping[str, Any], judge: Any) -> list[str]:
    """A scorer that grades with a model (it takes `judge`) needs the top-level judge."""
    if judge is not None:
        return []
    return [
        f"scorer.{name} grades with a judge model, but no judge is selected: add "
        f"judge=<backend> ({', '.join(backends())})"
        for name, cls in scorers.items()
        if takes(cls, "judge")
    ]


def grammar_problems(grammar: Any, capabilities: Any, model: Any) -> list[str]:
    """The selected backend instance must enforce the grammar (asked of its capabilities:
    InferenceClient's depend on its provider, for example). A duck-typed model without
    capabilities is judged by its `supported_grammars`, if it has any."""
    if grammar is None:
        return []
    able = getattr(capabilities, "grammars", None)
    if able is None:
        able = getattr(model, "supported_grammars", None)
    if able is None or grammar.type in able:
        misfit = getattr(model, "grammar_misfit", None)  # a model with fixed replies
        reason = misfit(grammar) if grammar.active and callable(misfit) else None
        if reason:
            return [
                f"grammar={grammar.type}: no scripted reply of the model fits it (first: "
                f"{reason}); script replies that fit (model.responses, model.match), or "
                "grammar=none"
            ]
        return []
    if hasattr(model, "grammar_error"):  # the instance says why (e.g. its provider)
        return [str(model.grammar_error(grammar))]
    from hydragent.models.registry import grammar_support_error

    return [grammar_support_error(type(model), grammar)]


# --- scorer <-> task ----------------------------------------------------------------------


def _number(value: Any) -> bool:
    try:
        float(str(value).replace(",", ""))
    except ValueError:
        return False
    return True


def _pattern(value: Any) -> bool:
    try:
        re.compile(str(value))
    except re.error:
        return False
    return True


#: scorer class name -> (what each sample must have, whether one bad sample is enough to fail,
#: the fix). A scorer whose every sample lacks what it needs would score nothing real.
SAMPLE_NEEDS: dict[str, tuple[Callable[[Any, Any], bool], bool, str]] = {
    "CodeExecScorer": (
        lambda sample, scorer: bool(sample.metadata.get("test")),
        True,
        "samples with `test` (and `entry_point`) fields, as task=humaneval has",
    ),
    "NumericScorer": (
        lambda sample, scorer: _number(sample.target),
        False,
        "numeric targets (task=arithmetic), or scorer=exact/includes for text",
    ),
    "ExactScorer": (
        lambda sample, scorer: sample.target not in (None, ""),
        False,
        "a target for each sample (task.fields.target names its column)",
    ),
    "IncludesScorer": (
        lambda sample, scorer: sample.target not in (None, ""),
        False,
        "a target for each sample (task.fields.target names its column)",
    ),
    "RegexScorer": (
        lambda sample, scorer: scorer.pattern is not None or _pattern(sample.target),
        False,
        "scorer.regex.pattern, or targets that are regular expressions",
    ),
}


def sample_problems(scorers: Mapping[str, Any], samples: Sequence[Any], task: str) -> list[str]:
    """Scorer <-> task: what each scorer reads from a sample is there."""
    problems = []
    for name, scorer in scorers.items():
        need = SAMPLE_NEEDS.get(type(scorer).__name__)
        if need is None or not samples:
            continue
        fits, strict, wants = need
        bad = [s for s in samples if not fits(s, scorer)]
        if bad and (strict or len(bad) == len(samples)):
            first = bad[0]
            problems.append(
                f"scorer.{name} cannot score task {task}: {len(bad)} of {len(samples)} samples "
                f"do not fit (first: id {first.id!r}, target {first.target!r}); it needs {wants}"
            )
    return problems


def template_problems(agent: Any, samples: Sequence[Any], task: str) -> list[str]:
    """Agent <-> task: every field `agent.prompt_template` names is in each sample (and in
    each few-shot example), or every such sample would fail on it."""
    import string

    template = getattr(agent, "prompt_template", None)
    if not isinstance(template, str):
        return []
    try:
        names = {
            f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f
        }
    except ValueError as error:
        return [f"agent.prompt_template: not a format string ({error}); write {{input}} etc."]
    problems = []
    rows = [("sample", s.id, s.as_dict()) for s in samples]
    rows += [("few_shot example", i, dict(e)) for i, e in enumerate(getattr(agent, "few_shot", []))]
    for kind, name, fields in rows:
        lacking = sorted(names - set(fields))
        if lacking:
            problems.append(
                f"agent.prompt_template uses {{{lacking[0]}}}, which {kind} {name!r} of task "
                f"{task} lacks; its fields: {', '.join(map(str, fields))}"
            )
            break
    return problems
