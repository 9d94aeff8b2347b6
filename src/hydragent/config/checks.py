"""The static half of assembly: schemas, signatures and wiring rules, before anything is
built (see config/assemble.py, which builds on it, and docs/architecture.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hydragent.config.problems import one_line, shown, unknown_key
from hydragent.config.resolve import anchored, link, resolve_plain
from hydragent.config.schemas import (
    RANGES,
    CacheConfig,
    LimitsConfig,
    RunnerConfig,
    TopLevel,
    checked_json_schema,
    pydantic_problems,
    typed_node,
)
from hydragent.config.targets import HYDRA_KEYS, Extras, check_target, locate

#: groups every job needs, and the helper groups whose choice must fit the backend.
REQUIRED = ("model", "agent", "task", "scorer")
HELPERS = ("router", "chat_template", "roles", "messages")


class StaticChecks:
    """A composed config, resolved once, with what the checks found: `problems` (one line
    each), `broken` groups (not to be built), `located` targets and `forwarded` model keys.

    `plain` is the resolved config; the checks replace each value they accept by its typed
    form (a schema's field type, a constructor's annotation), so after `check_static` it is
    the typed config that the builds read: what validate accepted is what runs."""

    def __init__(self, cfg: Any) -> None:
        from omegaconf import DictConfig, OmegaConf

        hydra = _hydra_node(cfg)
        self.choices: dict[str, Any] = dict(hydra.runtime.choices) if hydra is not None else {}
        # raw: an override's value may be an interpolation (`x=${oc.env:T}`), resolved below
        task = OmegaConf.to_container(hydra.overrides.task, resolve=False) if hydra else []
        self.overrides = [str(o) for o in task]  # type: ignore[union-attr]
        if not isinstance(cfg, DictConfig):
            cfg = OmegaConf.create(cfg)
        if "hydra" in cfg:
            cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        self.cfg = cfg
        self.problems: list[str] = []
        self.missing: set[str] = set()
        #: relative paths are relative to where hydragent was started, whatever chdir says
        self.launch_dir: str = str(hydra.runtime.cwd) if hydra is not None else os.getcwd()
        self.plain: dict[str, Any] = resolve_plain(cfg, self.problems, missing=self.missing)
        self.raw: dict[str, Any] = OmegaConf.to_container(cfg, resolve=False)  # type: ignore[assignment]
        self.located: dict[str, Any] = {}
        self.forwarded: list[str] = []
        # groups with a problem (an unset or unresolvable value included) are not built
        self.broken: set[str] = {path.split(".")[0].split("[")[0] for path in self.missing}

    def check_static(self) -> None:
        from hydragent.generation import GenerationConfig
        from hydragent.models import RetryPolicy

        plain = self.plain
        self.type("", plain, TopLevel, owner="the config")
        plain = self.plain
        for group in REQUIRED:
            if plain.get(group) is None and group not in self.missing:
                self.add(group, [f"{group} is not set: choose {group}=<option>{_options(group)}"])
        for group, schema in (
            ("runner", RunnerConfig),
            ("cache", CacheConfig),
            ("limits", LimitsConfig),
            ("generation", GenerationConfig),
            ("retry", RetryPolicy),
        ):
            if not self.has_missing(group):
                self.type(group, plain.get(group), schema)
        cache = self.plain.get("cache")
        if isinstance(cache, dict) and "cache" not in self.broken and cache.get("path"):
            cache["path"] = str(Path(self.launch_dir, Path(cache["path"]).expanduser()))
        if self.plain.get("sandbox") is not None and not self.has_missing("sandbox"):
            from hydragent.sandbox import SandboxConfig

            self.type("sandbox", self.plain["sandbox"], SandboxConfig)
        self.add("grammar", self.grammar_problems())
        self.link_interpolations()
        self.check_targets()
        if not self.has_missing("limits"):
            from hydragent.limits.checks import limits_problems

            self.add("limits", limits_problems(plain, self.located, self.launch_dir))
            limits = self.plain.get("limits")
            if isinstance(limits, dict) and "limits" not in self.broken:
                from hydragent.limits.stores import anchored_store

                store = str(limits.get("store") or "auto")
                limits["store"] = anchored_store(store, self.launch_dir)
        self.add("runner", self.caps_problems())
        self.problems = self.without_echoes(self.problems)

    def type(self, path: str, node: Any, schema: Any, owner: str = "") -> None:
        """Check a plain node against its schema; on success the typed node replaces it."""
        problems, typed = typed_node(path, node, schema, owner)
        self.add(path, problems)
        if problems or typed is None:
            return
        if path:
            self.plain[path] = typed
        else:
            self.plain.update(typed)

    def link_interpolations(self) -> None:
        """A `_target_` node's value that is a bare interpolation of another key
        (`retry: ${retry}`, `generation: ${generation}`) takes that key's typed value: the
        config is resolved once, and one key has one typed value wherever it is used."""
        for group in ("model", "judge", "agent", "task", "scorer", "tools"):
            link(self.plain.get(group), self.raw.get(group), self.plain)

    def without_echoes(self, problems: list[str]) -> list[str]:
        """Drop `a.b=v: ...` when `a.b` is `${c}` and `c=v: ...` is reported already (the
        generation node's `seed: ${seed}`): one mistake, one line."""
        from omegaconf import OmegaConf

        kept = []
        for problem in problems:
            key = problem.split("=", 1)[0] if "=" in problem.split(" ", 1)[0] else ""
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(self.cfg, parent) if parent else None
            source = ""
            if node is not None and leaf in node and OmegaConf.is_interpolation(node, leaf):
                raw = OmegaConf.to_container(node, resolve=False)[leaf]  # e.g. "${seed}"
                source = str(raw).removeprefix("${").removesuffix("}")
            if not (source and any(p.startswith(f"{source}=") for p in problems)):
                kept.append(problem)
        return kept

    def check_targets(self) -> None:
        from omegaconf import OmegaConf

        from hydragent.config.endpoints import credential_problem, endpoint_problem
        from hydragent.config.rules import (
            client_kwargs_problems,
            fits,
            helper_problems,
            judge_problems,
            role_problems,
            router_problems,
            tools_problems,
        )
        from hydragent.models import ApiModel

        plain = self.plain
        for group in ("model", "judge"):
            target = self.check_one(group, plain.get(group), "any")
            if target is None:
                continue
            node = plain[group]
            self.add(group, role_problems(group, node))
            if isinstance(target, type) and issubclass(target, ApiModel):
                raw = OmegaConf.to_container(self.cfg[group], resolve=False)
                problem = endpoint_problem(group, node) or credential_problem(group, node, raw)
                self.add(group, [problem] if problem else [])
                # a misplaced router= fills client_kwargs: its own rule says so, once
                if not self.choices.get("router") or fits("router", target):
                    self.add(
                        group, client_kwargs_problems(group, node, target)
                    )  # router=: its rule
            if isinstance(target, type) and fits("router", target):
                self.add(group, router_problems(group, node))
        agent = self.check_one("agent", plain.get("agent"), "completion")
        self.check_one("task", plain.get("task"), "any")
        scorers = {
            name: target
            for name, node in self.scorer_nodes().items()
            if (target := self.check_one(f"scorer.{name}", node, "any", group="scorer"))
        }
        for name, node in self.tool_nodes().items():
            self.check_one(f"tools.{name}", node, "any", group="tools")
        model = self.located.get("model")
        if isinstance(model, type):
            chosen = {g: f"{g}={self.choices[g]}" for g in HELPERS if self.choices.get(g)}
            retry, judge = self.retry_chosen(), self.located.get("judge")
            if retry and not (isinstance(judge, type) and fits("retry", judge)):
                chosen["retry"] = retry  # the judge's retries count too
            self.add("model", helper_problems(chosen, model, self.choices.get("model")))
        if agent is not None:
            self.add("agent", tools_problems(agent, plain.get("tools"), self.choices))
        self.add("scorer", judge_problems(scorers, plain.get("judge")))

    def check_one(
        self, path: str, node: Any, extras: Extras, group: str | None = None
    ) -> Any | None:
        """Signature and ranges of one `_target_` node; its target, or None when broken."""
        group = group or path
        if node is None:
            return None
        if not isinstance(node, dict) or "_target_" not in node:
            siblings = [n for n, v in (self.plain.get(group) or {}).items() if isinstance(v, dict)]
            if path != group and not isinstance(node, dict) and siblings:  # +scorer.template=Q
                leaf = path.rsplit(".", 1)[-1]
                guess = ", ".join(f"{group}.{s}.{leaf}" for s in siblings)
                self.add(group, [f"{path} is not a {group} option's node: did you mean {guess}?"])
                return None
            self.add(group, [f"{path} needs a _target_: choose {group}=<option>{_options(group)}"])
            return None
        try:
            target = locate(str(node["_target_"]))
        except Exception as error:
            self.add(
                group, [f"{path}._target_: cannot import {node['_target_']}: {one_line(error)}"]
            )
            return None
        self.located[path] = target
        if not callable(target) or not (isinstance(target, type) or _is_function(target)):
            return target  # a ready object (a @tool function): nothing to check
        if group == "tools" and _is_function(target) and set(node) <= HYDRA_KEYS:
            return target  # a plain function becomes a tool: its parameters are the tool's
        missing = frozenset(self.missing)
        problems, forwarded, typed = check_target(path, node, target, extras, missing)
        self.forwarded += [f"{path}.{key}" for key in forwarded]
        ranges = RANGES.get(group)
        if ranges is not None and not problems:
            given = {k: v for k, v in node.items() if k not in HYDRA_KEYS}
            found, ranged = typed_node(path, {**given, **typed}, ranges)
            problems += found
            typed.update(ranged or {})
        self.add(group, problems)
        if not problems:
            node.update(typed)  # in place: `node` is this path's dict inside `plain`
            node.update(anchored(node, self.launch_dir))
        return target

    def grammar_problems(self) -> list[str]:
        from pydantic import ValidationError

        from hydragent.grammar import Grammar

        node = self.plain.get("grammar")
        if node is None or self.has_missing("grammar"):
            return []
        if not isinstance(node, dict):
            return [f"{shown('grammar', node)} must be a mapping: choose grammar=<option>"]
        try:
            grammar = Grammar(**node)
        except ValidationError as error:
            # the whole-node rule (grammar=regex needs a pattern) names no field: say it as is
            whole = [
                f"grammar: {str(item['msg']).removeprefix('Value error, ')}"
                for item in error.errors()
                if not item["loc"]
            ]
            problems = pydantic_problems("grammar", error, Grammar, "grammar")
            return whole + [
                _as_schema_key(p) for p in problems if not p.startswith(("grammar=", "grammar:"))
            ]
        except (ValueError, TypeError) as error:
            return [f"grammar: {one_line(error)}"]
        if grammar.type == "json_schema" and grammar.schema is not None:
            try:
                checked_json_schema(grammar.schema)
            except ValueError as error:
                return [f"grammar.schema: {error}"]
        return []

    def caps_problems(self) -> list[str]:
        """runner.backend_concurrency names backends (conf/model names or class names)."""
        from hydragent.models import BACKENDS

        caps = (self.plain.get("runner") or {}).get("backend_concurrency") or {}
        valid = set(BACKENDS) | {path.split(":")[1] for path in BACKENDS.values()}
        model = self.located.get("model")
        if isinstance(model, type):
            valid.add(model.__name__)
        return [
            unknown_key(f"runner.backend_concurrency.{name}", "the backends", sorted(BACKENDS))
            for name in caps
            if name not in valid
        ]

    def retry_chosen(self) -> str | None:
        """The retry setting the user picked (`retry=none`, `retry.attempts=2`, a recipe's
        `override /retry`), as opposed to the default every config carries; None if none."""
        if self.choices.get("retry") not in (None, "default"):
            return f"retry={self.choices['retry']}"
        for override in self.overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key == "retry" or key.startswith("retry."):
                return override.lstrip("+~")
        return None

    def add(self, group: str, problems: list[str]) -> None:
        if problems:
            self.problems += problems
            self.broken.add(group.split(".")[0] if group else "")

    def has_missing(self, group: str) -> bool:
        return any(m == group or m.startswith(f"{group}.") for m in self.missing)

    def scorer_nodes(self) -> dict[str, Any]:
        """cfg.scorer: one `_target_` node, or a mapping name -> node (scorer=[exact,includes])."""
        node = self.plain.get("scorer")
        if not isinstance(node, dict):
            return {}
        if "_target_" in node:
            return {str(node["_target_"]).rsplit(".", 1)[-1]: node}
        return {str(name): child for name, child in node.items() if child is not None}

    def tool_nodes(self) -> dict[str, Any]:
        node = self.plain.get("tools")
        if not isinstance(node, dict):
            return {}
        if "_target_" in node:
            return {"tools": node}
        return {str(name): child for name, child in node.items() if child is not None}

    def plain_at(self, path: str) -> dict[str, Any]:
        node: Any = self.plain
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    @staticmethod
    def backend_name(model_cls: type) -> str:
        """The conf/model option of a backend class (a subclass counts as itself)."""
        from hydragent.models import BACKENDS

        for name, path in BACKENDS.items():
            if path.split(":")[1] == model_cls.__name__:
                return name
        return model_cls.__name__


def _as_schema_key(problem: str) -> str:
    """Grammar's `json_schema` field is the `schema` key in YAML: name it so (the type
    `json_schema` among the valid choices stays)."""
    problem = re.sub(r"\bgrammar\.json_schema\b", "grammar.schema", problem)
    head, sep, keys = problem.partition("valid keys: ")
    return head + sep + re.sub(r"\bjson_schema\b", "schema", keys)


def _is_function(target: Any) -> bool:
    import inspect

    return inspect.isfunction(target) or inspect.ismethod(target)


def _hydra_node(cfg: Any) -> Any:
    """The `hydra` node: the config's own (compose, pre-flight), or the running app's."""
    if hasattr(cfg, "get") and cfg.get("hydra") is not None:
        return cfg.hydra
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _options(group: str) -> str:
    """`; valid: a, b, c` from conf/<group>/*.yaml."""
    from hydragent.config.paths import conf_dir

    folder = conf_dir() / group
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return f"; valid: {', '.join(names)}" if names else ""
