"""`hydragent run` checks its config before Hydra writes anything (DESIGN.md §2: exit 2 "raised
before anything is written").

Hydra composes the config, calls `on_run_start` / `on_multirun_start`, and only then creates
the run (or sweep) folder, the log file and `.hydra/`. The `Preflight` callback (first in
conf/config.yaml `hydra.callbacks`) dry-assembles there: the run's config, or every job of a
basic-sweeper sweep, each composed as its job will be. A problem stops the app before any
folder exists.

Hydra turns an Exception raised by a callback into a warning, so the callback carries the
error out in `PreflightFailed`, a BaseException (the way SystemExit stops a program); the CLI
unwraps it and reports the error like any other. The check runs only inside `preflight()`,
which the CLI enters for `run`, and for `validate -m` (every job's problems at once, before
each job prints its own report); a single `validate` assembles in its own task, once.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from hydra.experimental.callback import Callback

from hydragent.config.problems import PreflightFailed

#: which Hydra modes to check: "run" and "multirun" for `hydragent run`, only "multirun" for
#: `hydragent validate -m` (a single validate assembles in its own task).
_ACTIVE: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "hydragent_preflight", default=frozenset()
)
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@contextlib.contextmanager
def preflight(modes: frozenset[str] = frozenset({"run", "multirun"})) -> Iterator[None]:
    """Dry-assemble before Hydra writes anything, for the Hydra app run inside it."""
    token = _ACTIVE.set(modes)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class Preflight(Callback):  # type: ignore[misc,valid-type]
    """Dry-assembles the run's config (or each sweep job's) before any folder is created."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        if "run" in _ACTIVE.get():
            _check_output("hydra.run.dir", str(config.hydra.run.dir))
            _check(config)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        if "multirun" not in _ACTIVE.get():
            return
        if str(config.hydra.sweeper.get("_target_")) != BASIC_SWEEPER:
            return  # another sweeper picks its jobs as it goes: each job checks itself
        from hydra.core.global_hydra import GlobalHydra

        from hydragent.config.problems import ConfigError

        if "run" in _ACTIVE.get():  # `hydragent run -m`; validate -m writes no folder
            _check_output("hydra.sweep.dir", str(config.hydra.sweep.dir))
        loader = GlobalHydra.instance().config_loader()
        jobs = sweep_jobs(config)
        found: dict[str, list[str]] = {}  # problem -> the jobs that have it
        for number, overrides in enumerate(jobs):
            try:
                try:
                    job = loader.load_sweep_config(config, list(overrides))
                except Exception as error:  # task=smoke,nonexistent: before multirun.yaml
                    raise PreflightFailed(error) from error
                _check(job)
            except PreflightFailed as failed:
                if not isinstance(failed.error, ConfigError) or len(jobs) == 1:
                    raise
                label = f"job {number} ({' '.join(overrides) or 'the base config'})"
                for problem in failed.error.problems:
                    found.setdefault(problem, []).append(label)
        if found:
            every = f"all {len(jobs)} jobs"
            raise PreflightFailed(
                ConfigError(
                    [
                        f"{every if len(where) == len(jobs) else ', '.join(where)}: {problem}"
                        for problem, where in found.items()
                    ]
                )
            )


def sweep_jobs(config: Any) -> list[list[str]]:
    """The override list of each job, as Hydra's BasicSweeper will launch them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    parsed = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _check(config: Any) -> None:
    """Dry-assemble one job's config, with HydraConfig set so `${hydra:...}` resolves."""
    from hydra.core.hydra_config import HydraConfig

    from hydragent.config.assemble import assemble

    holder = HydraConfig.instance()
    saved = holder.cfg
    try:
        holder.set_config(config)
        assemble(config, dry_run=True)
    except Exception as error:
        raise PreflightFailed(error) from error
    finally:
        holder.cfg = saved


def output_problem(key: str, folder: str) -> str | None:
    """`hydra.run.dir='...': cannot create it ...` when the run (or sweep) folder, or the first
    folder above it that exists, takes no new entries; None when it can be made. The probe
    file is unlinked at once: nothing is left on disk."""
    import tempfile
    from pathlib import Path

    path = Path(folder).expanduser().absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    why = f"{existing} is a file, not a folder" if not existing.is_dir() else ""
    if not why:
        try:
            with tempfile.TemporaryFile(dir=existing):
                return None
        except OSError as error:
            why = f"{existing} takes no new files ({error.strerror})"
    return f"{key}={folder!r}: cannot create the output folder: {why}; choose another"


def _check_output(key: str, folder: str) -> None:
    from hydragent.config.problems import ConfigError

    problem = output_problem(key, folder)
    if problem:
        raise PreflightFailed(ConfigError([problem]))
