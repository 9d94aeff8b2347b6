"""A schema for every config group, checked before anything is built.

Plain groups (runner, cache, generation, grammar, retry, sandbox and the top level) are pydantic
models with `extra="forbid"`: an unknown key, also one added with `+`, is an error with the
nearest name and the valid keys. `_target_` groups (model, judge, agent, tools, task, scorer)
take their keys from the target's signature (config/targets.py); the models here add the
ranges a signature cannot state (`task.limit >= 1`, `agent.max_steps >= 1`, ...), and are
`extra="allow"` so that they judge only the keys they name.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hydragent.config.problems import join, nearest, shown, unknown_key
from hydragent.cost import Pricing
from hydragent.generation import Seed

#: what a rerun into a folder with earlier results does (runner/resume.py acts on it).
ResumeMode = Literal["auto", "new_config", "fresh"]


class Node(BaseModel):
    """A plain config node: every key named, nothing else allowed."""

    model_config = ConfigDict(extra="forbid")


class RunnerConfig(Node):
    """`runner`: how samples run."""

    max_concurrency: int = Field(4, ge=1, description="samples in flight at once")
    backend_concurrency: dict[str, int] = Field(
        default_factory=dict, description="calls into one backend at once, per backend name"
    )
    sample_timeout_s: float | None = Field(600, gt=0, description="one sample's deadline")
    timeout_s: float | None = Field(None, gt=0, description="the whole run's deadline")
    attempts: int = Field(1, ge=1, description="answers per sample (pass@k)")
    max_error_rate: float = Field(0.0, ge=0, le=1, description="errored share that fails a run")
    resume: ResumeMode = Field("auto", description="what a rerun does with earlier results")
    progress: bool = True

    @field_validator("backend_concurrency")
    @classmethod
    def _positive(cls, caps: dict[str, int]) -> dict[str, int]:
        for name, limit in caps.items():
            if limit < 1:
                raise ValueError(f"{name}: a cap must be at least 1, got {limit}")
        return caps


class CacheConfig(Node):
    """`cache`: record and replay model replies."""

    mode: Literal["on", "off", "replay"] = "off"
    path: str | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_booleans(cls, mode: Any) -> Any:
        """YAML reads a bare on/off as a boolean."""
        return {True: "on", False: "off"}.get(mode, mode) if isinstance(mode, bool) else mode


class LimitsConfig(Node):
    """`limits`: rate, concurrency and dollar limits shared by every process on one store
    (hydragent/limits, docs/architecture.md "Limits")."""

    requests_per_minute: float | None = Field(None, gt=0, description="per limit key, shared")
    tokens_per_minute: int | None = Field(None, ge=1, description="input + output, shared")
    max_concurrency: int | None = Field(None, ge=1, description="calls in flight, shared")
    budget_usd: float | None = Field(None, ge=0, description="dollars, every sharing job")
    store: str = Field("auto", description="auto | sqlite:///PATH | redis://HOST:PORT/DB")
    key: str | None = Field(None, description="which calls share a limit (endpoint|model)")
    lease_ttl_s: float = Field(900, gt=0, description="a crashed holder's lease expires")

    @field_validator("store")
    @classmethod
    def _store(cls, url: str) -> str:
        from hydragent.limits.stores import STORE_FORMS, store_problem

        problem = store_problem(url)
        if problem:
            raise ValueError(f"{problem}; valid forms: {STORE_FORMS}")
        return url

    @property
    def active(self) -> bool:
        """Whether any limit is set (else no store is opened at all)."""
        limits = (self.requests_per_minute, self.tokens_per_minute, self.max_concurrency)
        return any(v is not None for v in (*limits, self.budget_usd))


class TopLevel(Node):
    """The composed config's own keys: one per group, the run's seed, the model's pricing (for
    a model LiteLLM's cost map does not know), Hydra's node."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: Any = None
    generation: Any = None
    grammar: Any = None
    retry: Any = None
    agent: Any = None
    tools: Any = None
    task: Any = None
    scorer: Any = None
    judge: Any = None
    runner: Any = None
    cache: Any = None
    limits: Any = None
    sandbox: Any = None
    seed: Seed | None = 0
    pricing: Pricing | None = None
    hydra: Any = None

    @field_validator("pricing", mode="before")
    @classmethod
    def _unset_pricing(cls, node: Any) -> Any:
        """The declared node with every price null (conf/config.yaml) is no pricing; one
        with a price must have both (an input price alone would price output at nothing)."""
        from hydragent.cost import given_pricing

        if not isinstance(node, dict) or given_pricing(node) is None:
            return None if isinstance(node, dict) else node
        unset = [k for k in ("input_per_mtok", "output_per_mtok") if node.get(k) is None]
        if unset:
            raise ValueError(
                f"pricing.{unset[0]} is not set (a price needs input_per_mtok and "
                f"output_per_mtok, dollars per million tokens); set pricing.{unset[0]}=1.5 "
                "(your model's price)"
            )
        return node


# --- ranges of `_target_` groups, by parameter name --------------------------------------


class Ranges(BaseModel):
    """Ranges for the keys a `_target_` group shares; other keys are the signature's."""

    model_config = ConfigDict(extra="allow")


class FieldMap(Node):
    """`task.fields`: which column holds each sample field."""

    id: str = "id"
    input: str = "input"
    target: str = "target"


class TaskRanges(Ranges):
    limit: int | None = Field(None, ge=1, description="keep only the first N samples")
    fields: FieldMap | None = None
    format: Literal["jsonl", "json", "csv", "parquet"] | None = None


class FewShot(Ranges):
    """One `agent.few_shot` example: the user turn's fields (input, and any the prompt
    template names) and the assistant's `output`."""

    input: Any
    output: Any


class AgentRanges(Ranges):
    max_steps: int = Field(6, ge=1)
    timeout_s: float = Field(10, gt=0)
    memory_mb: int = Field(512, ge=16)
    max_observation_chars: int = Field(4000, ge=1)
    max_parallel_tools: int = Field(4, ge=1)
    answer_regex: str | None = None
    few_shot: list[FewShot] | None = None

    _regex = field_validator("answer_regex")(lambda cls, v: _compiles(v))


class ToolRanges(Ranges):
    timeout_s: float = Field(10, gt=0)
    memory_mb: int = Field(512, ge=16)
    max_output_chars: int = Field(10000, ge=1)


class ScorerRanges(Ranges):
    k: list[int] = Field(default_factory=lambda: [1])
    timeout_s: float = Field(10, gt=0)
    memory_mb: int = Field(1024, ge=16)
    tolerance: float = Field(1e-6, ge=0)
    relative_tolerance: float = Field(0.0, ge=0)
    pattern: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")

    _regex = field_validator("pattern")(lambda cls, v: _compiles(v))

    @field_validator("k")
    @classmethod
    def _each_k(cls, k: list[int]) -> list[int]:
        if not k or any(x < 1 for x in k):
            raise ValueError(f"each k must be at least 1, got {k}")
        return k

    @field_validator("schema_")
    @classmethod
    def _schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if schema is None else checked_json_schema(schema)


class ModelRanges(Ranges):
    requests_per_minute: float | None = Field(None, gt=0)
    max_new_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0)
    max_batch_size: int | None = Field(None, ge=1)
    batch_window_s: float | None = Field(None, ge=0)


RANGES: dict[str, type[Ranges]] = {
    "model": ModelRanges,
    "judge": ModelRanges,
    "agent": AgentRanges,
    "tools": ToolRanges,
    "task": TaskRanges,
    "scorer": ScorerRanges,
}


def _compiles(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
    return pattern


def checked_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, checked against its JSON Schema meta-schema (draft 2020-12 unless
    it names another with `$schema`): `{"type": "objekt"}` fails here, not at every sample."""
    from jsonschema import exceptions, validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as error:
        where = "/".join(map(str, error.absolute_path))
        raise ValueError(
            f"not a valid JSON schema{f' at {where}' if where else ''}: {error.message}"
        ) from None
    return schema


# --- turning pydantic's errors into one-line problems ------------------------------------


def check_node(path: str, node: Any, schema: type[BaseModel], owner: str = "") -> list[str]:
    """Problems of `node` against `schema` (see `typed_node`)."""
    return typed_node(path, node, schema, owner)[0]


def typed_node(
    path: str, node: Any, schema: type[BaseModel], owner: str = ""
) -> tuple[list[str], Any]:
    """(problems, the node typed by `schema`): unknown keys with the valid ones, bad values
    with the rule they break; when there are none, the node as plain data holding the keys it
    was given, each as the schema types it (`'30'` for a float is 30.0), which is what runs.
    `owner` names the node in "is not a key of ..." lines."""
    if node is None:
        return [], None
    if not isinstance(node, dict):
        return [f"{shown(path, node)} must be a mapping of {', '.join(_keys(schema))}"], node
    try:
        typed = schema.model_validate(node)
    except ValidationError as error:
        return pydantic_problems(path, error, schema, owner or path or "the config"), node
    except ValueError as error:  # a validator outside pydantic's wrapping
        return [f"{path}: {error}"], node
    given = typed.model_dump(by_alias=True, exclude_unset=True)
    return [], {**node, **{key: value for key, value in given.items() if key in node}}


def pydantic_problems(
    path: str, error: ValidationError, schema: type[BaseModel], owner: str
) -> list[str]:
    """One line per pydantic error, in hydragent's words: the full key, the value, the rule."""
    problems = []
    for item in error.errors():
        loc = [part for part in item["loc"] if not isinstance(part, str) or part[0] != "["]
        key = path
        for part in loc:
            key = join(key, part)
        if item["type"] == "extra_forbidden":
            parent = _parent_schema(schema, loc[:-1])
            inner = key.rsplit(".", 1)[0] if len(loc) > 1 else owner
            valid = _keys(parent) if parent else []
            close = nearest(key.rsplit(".", 1)[-1], valid, cutoff=0.6)
            value = item.get("input")
            fix = ""  # the command that works: the nearest key, with the value given
            plain = isinstance(value, int | float) or (
                isinstance(value, str) and re.fullmatch(r"[\w.\-/]+", value)
            )  # a value the command line takes as it is
            if close and plain:
                fix = f"; use {key.rpartition('.')[0] + '.' if '.' in key else ''}{close}={value}"
            problems.append(unknown_key(key, inner, valid, fix))
            continue
        if item["type"] == "missing":
            given = item.get("input")
            has = f" (it has {', '.join(map(str, given))})" if isinstance(given, dict) else ""
            problems.append(f"{key} is required{has}")
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "literal_error":  # the choices, as the user types them
            expected = str((item.get("ctx") or {}).get("expected", ""))
            choices = re.findall(r"'([^']*)'", expected)
            message = f"valid: {', '.join(choices) or expected}"
        valid = _valid(schema, loc)
        if valid and item["type"] in ("int_parsing", "float_parsing", "int_type", "float_type"):
            message += f"; valid: {valid}"
        problems.append(f"{shown(key, item.get('input'))}: {message}")
    return problems


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _valid(schema: type[BaseModel], loc: list[Any]) -> str:
    """`an integer >= 1`, `a number > 0 or null`: the field's type and range, for a value
    of the wrong type (a range error already says its bound)."""
    parent = _parent_schema(schema, loc[:-1]) if loc else None
    info = parent.model_fields.get(loc[-1]) if parent and loc else None
    if info is None:
        return ""
    args = getattr(info.annotation, "__args__", (info.annotation,))
    kinds = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    kind = next((kinds[a] for a in args if a in kinds), "")
    bounds = [
        f"{symbol} {getattr(m, name)}"
        for m in info.metadata
        for name, symbol in _BOUNDS.items()
        if getattr(m, name, None) is not None
    ]
    text = " ".join([kind, " and ".join(bounds)]).strip()
    return f"{text} or null" if type(None) in args and text else text


def _keys(schema: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in schema.model_fields.items()]


def _parent_schema(schema: type[BaseModel], loc: list[Any]) -> type[BaseModel] | None:
    """The model that owns a nested key, following fields that are themselves models."""
    current: Any = schema
    for part in loc:
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return None
        annotation = fields[part].annotation
        current = next(
            (a for a in getattr(annotation, "__args__", (annotation,)) if _is_model(a)), None
        )
    return current if _is_model(current) else None


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
