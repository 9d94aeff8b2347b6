"""One assembly path: what `validate` accepts, `run` runs (DESIGN.md §2, §5).

`assemble(cfg, dry_run)` turns a composed config into what a job needs: the model (seeded,
capped, cached), the judge, the agent with its tools, the scorers, the task and its samples,
the grammar and the sandbox. Both commands call it:

- `hydragent validate` and the pre-flight of `hydragent run` (before Hydra creates any folder)
  call it with `dry_run=True`: models are built inside `dry_build()` (no weights, no network,
  no client library needed) and asked what a real run would lack (`environment_problems()`);
  tasks load their samples; nothing is written.
- `run_job` calls it with `dry_run=False`: the same checks, then the real build.

Every problem becomes one line of a `ConfigError` (the CLI exits 2), all of them at once.
In a real build the checks run first; a failure while really building (weights that do not
load, ...) is a runtime failure, since the dry run has already accepted the config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hydragent.config.problems import ConfigError, one_line, shown, unknown_key
from hydragent.config.schemas import (
    RANGES,
    CacheConfig,
    RunnerConfig,
    TopLevel,
    check_node,
    checked_json_schema,
    pydantic_problems,
)
from hydragent.config.targets import HYDRA_KEYS, Extras, check_target, locate
from hydragent.secrets import mask_secrets

T = TypeVar("T")

#: groups every job needs, and the helper groups whose choice must fit the backend.
REQUIRED = ("model", "agent", "task", "scorer")
HELPERS = ("router", "chat_template", "roles", "messages")


@dataclass
class Assembly:
    """What a job runs with. In a dry run the model is the dry-built instance (not cached)."""

    model: Any
    cached: Any = None  # the CachedModel wrapper, when cache=on|replay (real builds only)
    judge: Any = None  # the judge behind a UsageMeter, so each sample's judge tokens count
    agent: Any = None
    tools: list[Any] = field(default_factory=list)
    scorers: list[Any] = field(default_factory=list)
    task: Any = None
    samples: list[Any] = field(default_factory=list)
    grammar: Any = None
    sandbox: Any = None  # hydragent.sandbox.SandboxSpec where model-written code runs
    capabilities: Any = None  # the backend instance's Capabilities
    config: dict[str, Any] = field(default_factory=dict)  # resolved, secrets masked
    forwarded: list[str] = field(default_factory=list)  # model keys sent with every call
    backend: str = ""  # conf/model option name (or class name for a user's backend)
    dry_run: bool = True


def assemble(cfg: Any, dry_run: bool) -> Assembly:
    """Check and build a composed config (with or without its `hydra` node); raise
    ConfigError with every problem found."""
    return _Assembler(cfg, dry_run).assemble()


class _Assembler:
    def __init__(self, cfg: Any, dry_run: bool) -> None:
        from omegaconf import DictConfig, OmegaConf

        self.dry_run = dry_run
        hydra = _hydra_node(cfg)
        self.choices: dict[str, Any] = dict(hydra.runtime.choices) if hydra is not None else {}
        self.overrides = [str(o) for o in hydra.overrides.task] if hydra is not None else []
        if not isinstance(cfg, DictConfig):
            cfg = OmegaConf.create(cfg)
        if "hydra" in cfg:
            cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        self.cfg = cfg
        self.problems: list[str] = []
        self.missing: set[str] = set()
        self.plain: dict[str, Any] = resolve_plain(cfg, self.problems, missing=self.missing)
        self.located: dict[str, Any] = {}
        self.forwarded: list[str] = []
        # groups with a problem (an unset or unresolvable value included) are not built
        self.broken: set[str] = {path.split(".")[0].split("[")[0] for path in self.missing}

    # --- the flow ---------------------------------------------------------------------

    def assemble(self) -> Assembly:
        self.check_static()
        if self.problems and not self.dry_run:
            raise ConfigError(self.problems)
        result = Assembly(
            model=None,
            config=mask_secrets(self.plain),
            forwarded=self.forwarded,
            dry_run=self.dry_run,
        )
        result.task, result.samples = self.build_task()
        result.grammar = self.build_grammar()
        model = self.build_model("model")
        if model is not None:
            result.capabilities = getattr(model, "capabilities", None)  # None: duck-typed
            result.backend = self.backend_name(type(model))
            from hydragent.config.rules import grammar_problems

            self.problems += grammar_problems(result.grammar, result.capabilities, model)
        judge = self.build_model("judge") if self.plain.get("judge") is not None else None
        result.sandbox = self.resolve_sandbox()
        result.tools = self.build_tools(result.sandbox)
        scorers = self.build_scorers(judge, result.sandbox)
        result.scorers = list(scorers.values())
        result.agent = self.build_agent(result.tools, result.sandbox)
        if scorers and result.samples:
            from hydragent.config.rules import sample_problems

            task_name = self.choices.get("task") or getattr(result.task, "name", "task")
            self.problems += sample_problems(scorers, result.samples, str(task_name))
        if self.dry_run:
            self.problems += self.cache_problems()
        if self.problems:
            raise ConfigError(self.problems)
        result.model, result.cached = self.wrap(model, "model", caps=True)
        result.judge = judge
        return result

    # --- static checks: schemas, signatures, group fit --------------------------------

    def check_static(self) -> None:
        from hydragent.generation import GenerationConfig
        from hydragent.models.base import RetryPolicy

        plain = self.plain
        self.add("", check_node("", plain, TopLevel, owner="the config"))
        for group in REQUIRED:
            if plain.get(group) is None and group not in self.missing:
                self.add(group, [f"{group} is not set: choose {group}=<option>{_options(group)}"])
        for group, schema in (
            ("runner", RunnerConfig),
            ("cache", CacheConfig),
            ("generation", GenerationConfig),
            ("retry", RetryPolicy),
        ):
            if not self.has_missing(group):
                self.add(group, check_node(group, plain.get(group), schema))
        self.add("sandbox", self.sandbox_schema_problems())
        self.add("grammar", self.grammar_problems())
        self.check_targets()
        self.add("runner", self.caps_problems())
        self.problems = self.without_echoes(self.problems)

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
                source = str(node._get_node(leaf)._value()).strip("${}")
            if not (source and any(p.startswith(f"{source}=") for p in problems)):
                kept.append(problem)
        return kept

    def check_targets(self) -> None:
        from omegaconf import OmegaConf

        from hydragent.config.endpoints import credential_problem
        from hydragent.config.rules import (
            fits,
            helper_problems,
            judge_problems,
            role_problems,
            router_problems,
            tools_problems,
        )
        from hydragent.models.base import ApiModel

        plain = self.plain
        for group in ("model", "judge"):
            target = self.check_one(group, plain.get(group), "any")
            if target is None:
                continue
            node = plain[group]
            self.add(group, role_problems(group, node))
            if isinstance(target, type) and issubclass(target, ApiModel):
                raw = OmegaConf.to_container(self.cfg[group], resolve=False)
                self.add(group, [p for p in [credential_problem(group, node, raw)] if p])
            from hydragent.models.litellm_router import LiteLLMRouterModel

            if isinstance(target, type) and issubclass(target, LiteLLMRouterModel):
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
        problems, forwarded = check_target(path, node, target, extras, missing)
        self.forwarded += [f"{path}.{key}" for key in forwarded]
        ranges = RANGES.get(group)
        if ranges is not None and not problems:
            given = {k: v for k, v in node.items() if k not in HYDRA_KEYS}
            problems += check_node(path, given, ranges)
        self.add(group, problems)
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
            fields = ["type", "schema", "name", "strict", "pattern", "choices"]
            problems = pydantic_problems("grammar", error, Grammar, "grammar")
            return [p.replace("json_schema", "schema") for p in problems] or [
                f"grammar: {one_line(error)} (keys: {', '.join(fields)})"
            ]
        except (ValueError, TypeError) as error:
            return [f"grammar: {one_line(error)}"]
        if grammar.type == "json_schema" and grammar.schema is not None:
            try:
                checked_json_schema(grammar.schema)
            except ValueError as error:
                return [f"grammar.schema: {error}"]
        return []

    def sandbox_schema_problems(self) -> list[str]:
        node = self.plain.get("sandbox")
        if node is None or self.has_missing("sandbox"):
            return []
        from hydragent.sandbox import SandboxConfig

        return check_node("sandbox", node, SandboxConfig)

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

    # --- builds -------------------------------------------------------------------------

    def attempt(self, group: str, label: str, build: Callable[[], T]) -> T | None:
        """Run one build; in a dry run its failure is a problem, in a real run it is raised.
        Hydra's InstantiationException is unwrapped: its cause says what is wrong."""
        from hydra.errors import InstantiationException

        try:
            return build()
        except InstantiationException as error:
            cause = error.__cause__ or error
            if not self.dry_run:
                raise cause from error
            self.note(group, label, cause)
        except Exception as error:
            if not self.dry_run:
                raise
            self.note(group, label, error)
        return None

    def note(self, group: str, label: str, error: BaseException) -> None:
        if isinstance(error, ConfigError):
            self.add(group, error.problems)
            return
        text = one_line(error) or type(error).__name__
        self.add(group, [text if text.startswith(label) else f"{label}: {text}"])

    def build_task(self) -> tuple[Any, list[Any]]:
        if "task" in self.broken or self.plain.get("task") is None:
            return None, []
        task = self.attempt("task", "task", lambda: instantiate_with(self.cfg.task))
        if task is None:
            return None, []
        samples = self.attempt("task", "task", task.samples)
        return task, list(samples or [])

    def build_grammar(self) -> Any:
        if "grammar" in self.broken:
            return None
        from hydragent.grammar import Grammar

        return Grammar.coerce(self.plain.get("grammar"))

    def build_model(self, group: str) -> Any:
        """The backend instance, seeded; dry: built in `dry_build()` and asked what a real run
        would lack."""
        if {group, "generation"} & self.broken or self.plain.get(group) is None:
            return None
        from hydragent.models.base import dry_build

        target = self.located[group]
        extra: dict[str, Any] = {}
        if "generation" not in self.plain[group] and _takes(target, "generation"):
            extra["generation"] = self.plain.get("generation")

        def build() -> Any:
            if self.dry_run:
                with dry_build():
                    return instantiate_with(self.cfg[group], **extra)
            return instantiate_with(self.cfg[group], **extra)

        model = self.attempt(group, group, build)
        if model is None:
            return None
        seed = self.seed()
        if seed is not None and hasattr(model, "apply_seed"):
            model.apply_seed(int(seed))
        if self.dry_run and hasattr(model, "environment_problems"):
            said = {p.split(":", 1)[0] for p in self.problems}  # e.g. the endpoint's key rule
            self.add(
                group,
                [
                    f"{group}.{key}: {message}"
                    if key and key != "_target_"
                    else f"{group}: {message}"
                    for key, message in model.environment_problems()
                    if f"{group}.{key}" not in said
                ],
            )
        if group == "judge":  # metered: each sample's judge tokens are counted apart
            from hydragent.runner.wrappers import UsageMeter

            return UsageMeter(self.wrap(model, group, caps=False)[0])
        return model

    def seed(self) -> int | None:
        """The generation node's seed (which follows the top-level `seed`), else `seed`."""
        generation = self.plain.get("generation")
        if isinstance(generation, dict) and "seed" in generation:
            return generation["seed"]
        return self.plain.get("seed")

    def wrap(self, model: Any, group: str, caps: bool) -> tuple[Any, Any]:
        """Cap calls per backend, then cache replies (real runs only: a dry run writes nothing).
        The cache key holds the node, the generation settings and the seed, so that replicates
        (`seed=0,1`) and other sampling settings never replay each other's replies."""
        if model is None:
            return None, None
        limits = (self.plain.get("runner") or {}).get("backend_concurrency") or {}
        limit = limits.get(self.backend_name(type(model))) or limits.get(type(model).__name__)
        if caps and limit:
            from hydragent.runner.build import CappedModel

            model = CappedModel(model, int(limit))
        cache = CacheConfig.model_validate(self.plain.get("cache") or {})
        if self.dry_run or cache.mode == "off":
            return model, None
        from hydragent.runner.cache import CachedModel, ResponseStore, default_cache_path

        identity = dict(self.plain[group])
        identity.setdefault("generation", self.plain.get("generation"))
        if self.seed() is not None:
            identity.setdefault("seed", int(self.seed()))  # type: ignore[arg-type]
        store = ResponseStore(Path(cache.path).expanduser() if cache.path else default_cache_path())
        cached = CachedModel(model, store, cache.mode, identity)
        return cached, cached

    def cache_problems(self) -> list[str]:
        """cache=replay needs recorded replies to exist."""
        if "cache" in self.broken:
            return []
        cache = CacheConfig.model_validate(self.plain.get("cache") or {})
        if cache.mode != "replay":
            return []
        from hydragent.runner.cache import default_cache_path

        path = Path(cache.path).expanduser() if cache.path else default_cache_path()
        if path.is_file():
            return []
        return [
            f"cache=replay: no recorded replies at {path}; run once with cache=on to record "
            "them, or set cache.path to the file that holds them"
        ]

    def needs_sandbox(self) -> bool:
        paths = ["agent", *(f"scorer.{n}" for n in self.scorer_nodes())]
        paths += [f"tools.{n}" for n in self.tool_nodes()]
        return any(_takes(self.located.get(p), "sandbox") for p in paths)

    def resolve_sandbox(self) -> Any:
        """The one sandbox every code-running part shares; `auto` fails closed, naming what
        is missing, when no isolation is available."""
        if "sandbox" in self.broken or not self.needs_sandbox():
            return None
        from hydragent.sandbox import resolve

        return self.attempt("sandbox", "sandbox", lambda: resolve(self.plain.get("sandbox")))

    def build_tools(self, sandbox: Any) -> list[Any]:
        nodes = self.tool_nodes()
        if "tools" in self.broken or not nodes:
            return []
        from hydragent.tools import build_tools

        ready = {}
        for name, node in nodes.items():
            node = dict(node)
            if sandbox is not None and _takes(self.located.get(f"tools.{name}"), "sandbox"):
                node.setdefault("sandbox", sandbox)
            ready[name] = node
        return self.attempt("tools", "tools", lambda: build_tools(ready)) or []

    def build_scorers(self, judge: Any, sandbox: Any) -> dict[str, Any]:
        if "scorer" in self.broken:
            return {}
        built = {}
        for name in self.scorer_nodes():
            path = f"scorer.{name}" if "_target_" not in self.plain["scorer"] else "scorer"
            target = self.located.get(f"scorer.{name}")
            extra: dict[str, Any] = {}
            if _takes(target, "judge") and "judge" not in self.plain_at(path):
                extra["judge"] = judge
            if sandbox is not None and _takes(target, "sandbox"):
                extra["sandbox"] = sandbox
            node = self.cfg.scorer if path == "scorer" else self.cfg.scorer[name]
            scorer = self.attempt(
                "scorer",
                f"scorer.{name}",
                lambda n=node, e=extra: instantiate_with(n, **e),
            )
            if scorer is not None:
                built[name] = scorer
        return built

    def build_agent(self, tools: list[Any], sandbox: Any) -> Any:
        if "agent" in self.broken or "tools" in self.broken or self.plain.get("agent") is None:
            return None
        target = self.located.get("agent")
        extra: dict[str, Any] = {}
        if _takes(target, "tools"):
            extra["tools"] = tools
        if sandbox is not None and _takes(target, "sandbox"):
            extra["sandbox"] = sandbox
        return self.attempt("agent", "agent", lambda: instantiate_with(self.cfg.agent, **extra))

    # --- helpers ------------------------------------------------------------------------

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


def instantiate_with(node: Any, **ready: Any) -> Any:
    """Instantiate a `_target_` node, handing it built objects (tools, a judge, a sandbox
    spec) as they are: through Hydra's kwargs a dataclass would become a dict."""
    from hydra.utils import instantiate

    return instantiate(node, _partial_=True, _convert_="all")(**ready)


def _hydra_node(cfg: Any) -> Any:
    """The `hydra` node: the config's own (compose, pre-flight), or the running app's."""
    if hasattr(cfg, "get") and cfg.get("hydra") is not None:
        return cfg.hydra
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _takes(target: Any, parameter: str) -> bool:
    if target is None:
        return False
    from hydragent.config.rules import takes

    return takes(target, parameter)


def _is_function(target: Any) -> bool:
    import inspect

    return inspect.isfunction(target) or inspect.ismethod(target)


def _options(group: str) -> str:
    """`; valid: a, b, c` from conf/<group>/*.yaml."""
    from hydragent.config.paths import conf_dir

    folder = conf_dir() / group
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return f"; valid: {', '.join(names)}" if names else ""


# --- resolving the config -----------------------------------------------------------------


def resolve_plain(
    cfg: Any, problems: list[str], path: str = "", missing: set[str] | None = None
) -> Any:
    """The config as plain Python, resolving interpolations; each missing `???` value and each
    failed interpolation becomes a problem naming its key (and its path joins `missing`)
    instead of stopping at the first."""
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(cfg, DictConfig | ListConfig):
        return cfg
    keys = list(cfg.keys()) if isinstance(cfg, DictConfig) else list(range(len(cfg)))
    out: dict[Any, Any] | list[Any] = {} if isinstance(cfg, DictConfig) else []
    for key in keys:
        child_path = f"{path}.{key}" if path else str(key)
        if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, key):
            problems.append(f"{child_path} is required (???): set it, e.g. {child_path}=VALUE")
            if missing is not None:
                missing.add(child_path)
            continue
        try:
            child = cfg[key]
        except OmegaConfBaseException as error:
            problems.append(f"{child_path}: {one_line(error)}")
            if missing is not None:
                missing.add(child_path)
            continue
        value = resolve_plain(child, problems, child_path, missing)
        if isinstance(out, dict):
            out[key] = value
        else:
            out.append(value)
    return out


def describe(assembly: Assembly) -> Mapping[str, Any]:
    """What `validate` reports beside the config: the backend, its capabilities, the
    sandbox, the samples and the keys forwarded to every completion call."""
    caps = assembly.capabilities
    return {
        "backend": assembly.backend,
        "grammars": sorted(caps.grammars) if caps is not None else [],
        "sandbox": getattr(assembly.sandbox, "name", None),
        "samples": len(assembly.samples),
        "forwarded": assembly.forwarded,
    }
