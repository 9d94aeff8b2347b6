"""One assembly path: what `validate` accepts, `run` runs (DESIGN.md §2, §5).

`assemble(cfg, dry_run)` turns a composed config into what a job needs: the model (seeded),
the judge, the agent with its tools, the scorers, the task and its samples, the grammar and
the sandbox. They are handed over unwrapped: the runner puts its request path (stop, cache,
cap, judge meter) around them (runner/build.py). Both commands call it:

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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hydragent.config.checks import StaticChecks
from hydragent.config.problems import ConfigError, one_line
from hydragent.config.rules import takes
from hydragent.config.schemas import RunnerConfig
from hydragent.config.store import cache_problems
from hydragent.secrets import mask_secrets

T = TypeVar("T")


@dataclass
class Assembly:
    """What a job runs with: the built parts, unwrapped (the runner wraps their requests)."""

    model: Any
    judge: Any = None
    agent: Any = None
    tools: list[Any] = field(default_factory=list)
    scorers: list[Any] = field(default_factory=list)
    task: Any = None
    samples: list[Any] = field(default_factory=list)
    grammar: Any = None
    sandbox: Any = None  # hydragent.sandbox.SandboxSpec where model-written code runs
    capabilities: Any = None  # the backend instance's Capabilities
    config: dict[str, Any] = field(default_factory=dict)  # resolved, typed, secrets masked
    settings: dict[str, Any] = field(default_factory=dict)  # resolved, typed: what runs
    runner: dict[str, Any] = field(default_factory=dict)  # the typed `runner` node, defaults in
    forwarded: list[str] = field(default_factory=list)  # model keys sent with every call
    backend: str = ""  # conf/model option name (or class name for a user's backend)
    dry_run: bool = True
    #: per group (model, judge): generation settings its backend would never send
    unsent_generation: dict[str, list[str]] = field(default_factory=dict)


def assemble(cfg: Any, dry_run: bool, checked: Assembly | None = None) -> Assembly:
    """Check and build a composed config (with or without its `hydra` node); raise
    ConfigError with every problem found. `checked`: the dry Assembly the start check made
    of this job (config/preflight.py); a real build takes its task and samples when the task
    node is the same, so a run reads its rows once, and runs the rows that were checked."""
    return _Assembler(cfg, dry_run, checked).assemble()


class _Assembler(StaticChecks):
    def __init__(self, cfg: Any, dry_run: bool, checked: Assembly | None = None) -> None:
        super().__init__(cfg)
        self.dry_run = dry_run
        self.checked = checked
        self.unsent_generation: dict[str, list[str]] = {}

    # --- the flow ---------------------------------------------------------------------

    def assemble(self) -> Assembly:
        self.check_static()
        if "cache" not in self.broken:  # static too: a real build refuses what a dry one does
            self.add("cache", cache_problems(self.plain.get("cache")))
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
        if result.samples:
            from hydragent.config.rules import sample_problems, template_problems

            task_name = str(self.choices.get("task") or getattr(result.task, "name", "task"))
            self.problems += sample_problems(scorers, result.samples, task_name)
            self.problems += template_problems(result.agent, result.samples, task_name)
        if self.problems:
            raise ConfigError(self.problems)
        result.model = model
        result.judge = judge
        result.settings = self.plain
        result.runner = RunnerConfig.model_validate(self.plain.get("runner") or {}).model_dump()
        result.unsent_generation = self.unsent_generation
        return result

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
        first = re.split(r"[ :]", text, maxsplit=1)[0]
        if first in self.plain_at(label):  # "template names {reference}...": name the key
            text = f"{label}.{text}"
        self.add(group, [text if text.startswith(label) else f"{label}: {text}"])

    def build_task(self) -> tuple[Any, list[Any]]:
        if "task" in self.broken or self.plain.get("task") is None:
            return None, []
        checked = self.checked
        if checked and checked.samples and checked.settings.get("task") == self.plain["task"]:
            return checked.task, list(checked.samples)
        task = self.attempt("task", "task", lambda: self.construct("task"))
        if task is None:
            return None, []
        if self.dry_run and hasattr(task, "check"):
            # Load first: `check` finds, without loading, what a load would fail on, in the
            # task's own words (file:line, the key to fix); it streams the whole file, so it
            # is asked only when the load fails (a large task was read three times a run).
            try:
                return task, self._loaded(list(task.samples()))
            except Exception:
                found = self.attempt("task", "task", task.check) or []
            self.add(
                "task", [f"task.{key}: {text}" if key else f"task: {text}" for key, text in found]
            )
            if found:
                return task, []
        found_samples = self.attempt("task", "task", task.samples)  # the scorer rules read them
        return task, self._loaded(None if found_samples is None else list(found_samples))

    def _loaded(self, samples: list[Any] | None) -> list[Any]:
        """The samples; a dry run names a task that yields none (a run would do nothing)."""
        if samples == [] and self.dry_run:
            where = self.plain["task"].get("path") or self.choices.get("task") or "the task"
            self.add(
                "task",
                [
                    f"task: {where} yields no samples (a run would do nothing); check the "
                    "file's rows, task.format and task.fields"
                ],
            )
        return list(samples or [])

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
        if "retry" in self.broken and "retry" in self.plain[group]:
            return None  # its `retry: ${retry}` is reported once, as retry.*
        from hydragent.models.base import clients_on_first_use, dry_build

        target = self.located[group]
        extra: dict[str, Any] = {}
        if "generation" not in self.plain[group] and takes(target, "generation"):
            extra["generation"] = self.plain.get("generation")

        def build() -> Any:
            # a real build's clients wait for their first call: keys and extras were checked
            with dry_build() if self.dry_run else clients_on_first_use():
                return self.construct(group, **extra)

        model = self.attempt(group, group, build)
        if model is None:
            return None
        seed = self.seed()
        if seed is not None and hasattr(model, "apply_seed"):
            model.apply_seed(int(seed))
        unsent = model.unsent_generation() if hasattr(model, "unsent_generation") else []
        if unsent:
            self.unsent_generation[group] = unsent
        if self.dry_run and hasattr(model, "environment_problems"):
            said = {p.split(":", 1)[0] for p in self.problems}  # e.g. the endpoint's key rule
            # a check that fails itself is a problem too, never a traceback
            found = self.attempt(group, group, model.environment_problems) or []
            self.add(
                group,
                [
                    f"{_key_path(group, key)}: {message}"
                    if key and key != "_target_"
                    else f"{group}: {message}"
                    for key, message in _at(group, found)
                    if _key_path(group, key) not in said
                ],
            )
        return model

    def seed(self) -> int | None:
        """The generation node's seed (which follows the top-level `seed`), else `seed`."""
        generation = self.plain.get("generation")
        if isinstance(generation, dict) and "seed" in generation:
            return generation["seed"]
        return self.plain.get("seed")

    def needs_sandbox(self) -> bool:
        paths = ["agent", *(f"scorer.{n}" for n in self.scorer_nodes())]
        paths += [f"tools.{n}" for n in self.tool_nodes()]
        return any(takes(self.located.get(p), "sandbox") for p in paths)

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
            if sandbox is not None and takes(self.located.get(f"tools.{name}"), "sandbox"):
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
            if takes(target, "judge") and "judge" not in self.plain_at(path):
                extra["judge"] = judge
            if sandbox is not None and takes(target, "sandbox"):
                extra["sandbox"] = sandbox
            scorer = self.attempt(
                "scorer",
                f"scorer.{name}",
                lambda p=path, t=target, e=extra: self.construct(p, t, **e),
            )
            if scorer is not None:
                built[name] = scorer
        return built

    def build_agent(self, tools: list[Any], sandbox: Any) -> Any:
        if "agent" in self.broken or "tools" in self.broken or self.plain.get("agent") is None:
            return None
        target = self.located.get("agent")
        extra: dict[str, Any] = {}
        if takes(target, "tools"):
            extra["tools"] = tools
        if sandbox is not None and takes(target, "sandbox"):
            extra["sandbox"] = sandbox
        return self.attempt("agent", "agent", lambda: self.construct("agent", **extra))

    def construct(self, path: str, target: Any = None, **ready: Any) -> Any:
        """Build the `_target_` node at `path` from its typed values (see `construct`)."""
        return construct(target or self.located[path], self.plain_at(path), **ready)


def construct(target: Any, node: Mapping[str, Any], **ready: Any) -> Any:
    """Call `target` with the node's typed values (checks.py typed them, interpolations
    resolved once) and the built objects it takes (tools, a judge, a sandbox spec), which
    win over a key of the same name. The values are not handed to Hydra's `instantiate`,
    which would compose them into an OmegaConf node again: there a string holding `${`
    would be resolved a second time, and a dataclass would become a dict."""
    from hydragent.config.targets import HYDRA_KEYS

    args = [_built(value) for value in node.get("_args_", [])]
    kwargs = {key: _built(value) for key, value in node.items() if key not in HYDRA_KEYS}
    return target(*args, **{**kwargs, **ready})


def _built(value: Any) -> Any:
    """A nested `_target_` node (a helper object a user's target takes) built by Hydra; any
    other value as it is."""
    if isinstance(value, dict) and "_target_" in value:
        from hydra.utils import instantiate

        return instantiate(value, _convert_="all")
    if isinstance(value, dict):
        return {key: _built(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_built(item) for item in value]
    return value


def _key_path(group: str, key: str) -> str:
    """A model's problem key as the user writes it: `generation.*` is the top-level node."""
    return key if key.startswith("generation.") else f"{group}.{key}"


def unsent_lines(unsent: Mapping[str, list[str]], backend: str) -> list[str]:
    """One line per group whose backend would never send some generation settings."""
    return [
        f"{backend if group == 'model' else 'the judge'} does not send "
        f"{', '.join(f'generation.{key}' for key in keys)} (no such parameter for this model)"
        for group, keys in unsent.items()
    ]


def _at(group: str, problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A model's problems name its keys as `model.KEY`; the judge's fix is `judge.KEY`."""
    if group == "model":
        return problems
    return [(key, re.sub(r"\bmodel\.(?=[a-z_])", f"{group}.", text)) for key, text in problems]
