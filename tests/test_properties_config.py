"""Property: what `validate` accepts is exactly the typed object that `run` uses.

Hypothesis generates overrides: keys from the real schemas (runner, generation, cache, the
model's completion parameters, task.limit, seed) and a few keys no schema has, values of many
types (numbers, booleans, null, quoted numeric and unicode strings) and `${oc.env:VAR}`
interpolations with the variable set or unset. For each config:

- `validate` and `run` both start with one check (`check_start`); when it refuses, the real
  build `run_job` would make refuses with the same problem keys (there is no way around it);
- on OK, `run_job` runs every sample without an error, and every constructor gets the very
  values the check typed (types included), each of its declared type.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from hydragent.config import ConfigError, compose
from hydragent.config import assemble as assemble_module
from hydragent.config.preflight import check_start
from hydragent.config.schemas import CacheConfig, RunnerConfig
from hydragent.config.targets import COMPLETION_PARAMETERS
from hydragent.generation import GenerationConfig

BASE = ["model=scripted", "task=smoke", "runner.progress=false"]
VARIABLES = ("HYDRAGENT_PROP_A", "HYDRAGENT_PROP_B")
FORWARDED = ("max_tokens", "temperature", "timeout", "top_p", "seed", "stop", "n")

#: key -> the type the schema (or the completion-parameter table) declares for it
DECLARED: dict[str, Any] = {
    **{f"runner.{k}": f.annotation for k, f in RunnerConfig.model_fields.items()},
    **{f"generation.{k}": f.annotation for k, f in GenerationConfig.model_fields.items()},
    "cache.mode": CacheConfig.model_fields["mode"].annotation,
    **{f"model.{k}": COMPLETION_PARAMETERS[k] for k in FORWARDED},
    "model.requests_per_minute": float | None,
    "task.limit": int | None,
    "seed": int | None,
}
DECLARED.pop("runner.backend_concurrency")  # a mapping: not written as one override
UNKNOWN = ("+runner.max_concurency", "+generation.temprature", "+sed", "+agent.max_stepz")
KEYS = sorted(DECLARED) + list(UNKNOWN)

safe_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="'\\$"
    ),
    max_size=6,
)
numeric_text = st.from_regex(r"-?[0-9]{1,2}(\.[0-9])?", fullmatch=True)
# (override value, environment variables it needs: name -> value, or None for unset)
plain_values = st.one_of(
    st.integers(-2, 12).map(str),
    st.floats(-1, 40, allow_nan=False).map(lambda f: repr(round(f, 3))),
    st.sampled_from(["true", "false", "null", "on", "off", "auto", "fresh", "replay"]),
    numeric_text.map(lambda s: f"'{s}'"),
    safe_text.map(lambda s: f"'{s}'"),
).map(lambda text: (text, {}))
env_values = st.tuples(
    st.sampled_from(VARIABLES), st.one_of(st.none(), numeric_text, safe_text)
).map(lambda pair: (f"${{oc.env:{pair[0]}}}", {pair[0]: pair[1]}))
overrides = st.lists(
    st.tuples(st.sampled_from(KEYS), st.one_of(plain_values, env_values)),
    max_size=3,
    unique_by=lambda pair: pair[0].lstrip("+"),
)


@contextlib.contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in VARIABLES}
    try:
        for name in VARIABLES:
            value = values.get(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def typed(value: Any) -> Any:
    """A value with its types, for comparisons where 30 and 30.0 and '30' differ."""
    if isinstance(value, dict):
        return ("dict", {str(k): typed(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, str | int | float | bool | type(None)):
        return (type(value).__name__, value)
    return (type(value).__name__,)  # a built object (a sandbox spec, tools): its type


@contextlib.contextmanager
def recorded() -> Iterator[list[tuple[str, Any]]]:
    """Every constructor call assembly makes: (target, its typed values, the built objects
    and the `generation` node it is handed included)."""
    calls: list[tuple[str, Any]] = []
    real = assemble_module.construct

    def spy(target: Any, node: Any, **ready: Any) -> Any:
        calls.append((getattr(target, "__qualname__", str(target)), typed({**node, **ready})))
        return real(target, node, **ready)

    with mock.patch.object(assemble_module, "construct", spy):
        yield calls


def verdict(error: ConfigError) -> set[str]:
    """The keys the problems name (`key=value: ...`, `key: ...`, `key is not a key ...`)."""
    keys = set()
    for problem in error.problems:
        head = problem.split(":", 1)[0].split("=", 1)[0].split(" ", 1)[0]
        keys.add(head)
    return keys


def value_at(node: Any, path: str) -> Any:
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def strictly(annotation: Any, value: Any) -> bool:
    try:
        TypeAdapter(annotation).validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=int(os.environ.get("HYDRAGENT_PROPERTY_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(chosen=overrides)
def test_validate_accepts_exactly_what_run_builds_and_runs(
    chosen: list[tuple[str, tuple[str, dict[str, str | None]]]], tmp_path: Path
) -> None:
    from omegaconf import OmegaConf

    from hydragent.runner import run_job

    env: dict[str, str | None] = {}
    for _, (_, needs) in chosen:
        env.update(needs)
    words = [f"{key}={value}" for key, (value, _) in chosen]
    folder = tmp_path / f"run-{abs(hash(tuple(words)))}"
    with environment({**env, "HYDRAGENT_CACHE_DIR": str(tmp_path)}):
        os.environ["HYDRAGENT_CACHE_DIR"] = str(tmp_path)
        cfg = compose([*BASE, *words])
        with recorded() as checked_calls:
            try:
                checked = check_start(cfg, "run")  # what validate and run's start both call
            except ConfigError as error:
                checked, problems = None, verdict(error)
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        built: list[Any] = []
        real_assemble = assemble_module.assemble

        def keep(config: Any, dry_run: bool, checked: Any = None) -> Any:
            built.append(real_assemble(config, dry_run, checked))
            return built[-1]

        if checked is None:  # the real build refuses alike: there is no path around the check
            with pytest.raises(ConfigError) as refused:
                real_assemble(job, dry_run=False)
            assert verdict(refused.value) == problems, words
            return
        with recorded() as run_calls, mock.patch("hydragent.runner.job.assemble", keep):
            summary = run_job(job, folder, checked=checked)  # as `hydragent run` hands it
        assert summary["counts"]["error"] == 0, (words, summary["errors"])
        # the same values, of the same types; the task is the one the check built and loaded
        task_name = type(checked.task).__qualname__
        assert built[0].task is checked.task, words
        assert run_calls == [c for c in checked_calls if c[0] != task_name], words
        runner, config = built[0].runner, built[0].config
        for key, (value, _) in chosen:
            key = key.lstrip("+")
            if key not in DECLARED:
                continue
            group, _, leaf = key.partition(".")
            used = runner.get(leaf) if group == "runner" else value_at(config, key)
            assert strictly(DECLARED[key], used), f"{key}={value} ran as {used!r}"
        (model,) = [c for target, c in run_calls if target == "ScriptedModel"]
        assert model[1].get("generation") == typed(config["generation"]), (words, model)
