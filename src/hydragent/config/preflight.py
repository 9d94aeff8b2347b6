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
which the CLI enters for `run` and `validate` alike: both call `check_start`, so their
verdicts cannot differ. `validate` then describes the Assembly the check made (for `-m`,
every job's problems at once, before each job prints its own report), and its Hydra folder
is a scratch one, thrown away; the user's own folder is what the check judged.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from hydragent.config.problems import PreflightFailed

#: whether the callback checks: only inside the CLI's `run` and `validate` (see `preflight`)
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("hydragent_preflight", default=False)
#: the user's own `hydra.run.dir` / `hydra.sweep.dir` overrides, which `validate` shadows with
#: a scratch folder (it writes nothing): the checks judge the user's values, as `run` would.
_USER_DIRS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "hydragent_user_dirs", default=None
)
#: `validate`'s scratch folder, where Hydra's run goes once the user's folder is checked, and
#: the Assembly the check made, which `validate` then describes.
_SCRATCH: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hydragent_scratch", default=None
)
_CHECKED: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "hydragent_checked", default=None
)
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
#: the `hydra` keys a launch resolves (a value that did not resolve there made the run exit 1
#: after validate said OK), and the folder each mode creates. Every key is checked in both
#: modes, so a config's verdict does not depend on `-m`.
LAUNCH_KEYS = (
    "hydra.run.dir",
    "hydra.sweep.dir",
    "hydra.sweep.subdir",
    "hydra.job.name",
    "hydra.job.chdir",
    "hydra.output_subdir",
    "hydra.job.env_set",
)
FOLDER_KEY = {"run": "hydra.run.dir", "multirun": "hydra.sweep.dir"}
#: the keys that make a job's folder: Hydra puts it in `hydra.runtime.output_dir`, which the
#: log file's name interpolates, so a '${' in the resolved folder is read as an interpolation
FOLDER_PARTS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")


@contextlib.contextmanager
def preflight(
    user_dirs: dict[str, str] | None = None,
    scratch: str | None = None,
) -> Iterator[None]:
    """Dry-assemble before Hydra writes anything, for the Hydra app run inside it. With
    `scratch` (validate), the run goes there once the user's own folder has been checked."""
    tokens = (
        _ACTIVE.set(True),
        _USER_DIRS.set(dict(user_dirs or {})),
        _SCRATCH.set(scratch),
        _CHECKED.set([]),
    )
    try:
        yield
    finally:
        for var, token in zip((_ACTIVE, _USER_DIRS, _SCRATCH, _CHECKED), tokens, strict=True):
            var.reset(token)  # type: ignore[attr-defined]


class Preflight(Callback):  # type: ignore[misc,valid-type]
    """Dry-assembles the run's config (or each sweep job's) before any folder is created."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        if not _ACTIVE.get():
            return
        try:
            assembly = check_start(config, "run")
        except Exception as error:
            raise PreflightFailed(error) from error
        _CHECKED.get().append(assembly)  # type: ignore[union-attr]
        scratch = _SCRATCH.get()
        if scratch is not None:  # validate writes nothing: Hydra's run folder is thrown away
            from omegaconf import read_write

            with read_write(config.hydra.run):
                config.hydra.run.dir = scratch

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        if not _ACTIVE.get():
            return
        from hydra.core.global_hydra import GlobalHydra

        from hydragent.config.problems import ConfigError

        launch = launch_problems(config, "multirun")
        if str(config.hydra.sweeper.get("_target_")) != BASIC_SWEEPER:
            if launch:  # another sweeper picks its jobs as it goes: each job checks itself
                raise PreflightFailed(ConfigError(launch))
            return
        loader = GlobalHydra.instance().config_loader()
        jobs = sweep_jobs(config)
        found: dict[str, list[str]] = {}  # problem -> the jobs that have it
        folders: dict[Path, list[int]] = {}  # folder -> the jobs that write there
        for number, overrides in enumerate(jobs):
            label = f"job {number} ({' '.join(overrides) or 'the base config'})"
            try:
                job = loader.load_sweep_config(config, list(overrides))
                _with_hydra(job, lambda c: _assemble(c))
                folder = job_folder(job, "multirun", number)
                refusal = (
                    None if folder is None else resume_problem(job, folder, FOLDER_KEY["multirun"])
                )
            except ConfigError as error:
                if len(jobs) == 1:
                    raise PreflightFailed(ConfigError(launch + error.problems)) from error
                for problem in error.problems:
                    found.setdefault(problem, []).append(label)
                continue
            except Exception as error:  # task=smoke,nonexistent: before multirun.yaml
                raise PreflightFailed(error) from error
            if folder is not None:
                folders.setdefault(folder, []).append(number)
            if refusal:  # each job's own folder, so the line names it: one line per job
                found.setdefault(f"{label}: {refusal}", [])
        every = f"all {len(jobs)} jobs"
        problems = launch + [
            problem
            if not where
            else f"{every if len(where) == len(jobs) else ', '.join(where)}: {problem}"
            for problem, where in found.items()
        ]
        problems += _collisions(config, folders)
        if problems:
            raise PreflightFailed(ConfigError(problems))


def _collisions(config: Any, folders: dict[Path, list[int]]) -> list[str]:
    """Two jobs of a sweep whose folders are one: the second would resume into (or be
    refused by) the first's results mid-sweep, or find the folder locked by it."""
    subdir = config.hydra.sweep._get_node("subdir")._value()  # as written, unresolved
    return [
        f"hydra.sweep.subdir={subdir}: jobs {', '.join(map(str, numbers))} resolve to one "
        f"folder ({folder}); each job needs its own: keep the default "
        f"hydra.sweep.subdir=${{hydra.job.num}}, or put ${{hydra.job.num}} in yours"
        for folder, numbers in folders.items()
        if len(numbers) > 1
    ]


def checked_assembly() -> Any | None:
    """The dry Assembly the pre-flight check made for a single run, once (`validate` shows
    it; `run` builds from it: config/assemble.py); else None (a sweep's job, checked at the
    sweep's start, assembles on its own)."""
    checked = _CHECKED.get()
    return checked.pop() if checked else None


def check_start(config: Any, mode: str) -> Any:
    """The one check before anything is written, for `validate` and `run` alike: the `hydra`
    keys the launch resolves, the output folder, and the dry assembly of the job's config.
    Returns the dry Assembly; raises one ConfigError holding every problem."""
    from hydragent.config.problems import ConfigError

    problems = launch_problems(config, mode)
    try:
        assembly = _with_hydra(config, _assemble)
    except ConfigError as error:
        raise ConfigError(problems + error.problems) from None
    folder = job_folder(config, mode)
    refusal = resume_problem(config, folder) if folder is not None else None
    problems += [refusal] if refusal else []
    if problems:
        raise ConfigError(problems)
    return assembly


def job_folder(config: Any, mode: str, number: int = 0) -> Path | None:
    """The folder the job writes to, as Hydra will make it (the user's own folder where
    `validate` shadows it): `hydra.run.dir`, or a sweep job's `hydra.sweep.dir`/`subdir`.
    None when it does not resolve (launch_problems reports that)."""
    from omegaconf.errors import OmegaConfBaseException

    work = _work_copy(config, number)
    keys = ["hydra.run.dir"] if mode == "run" else ["hydra.sweep.dir", "hydra.sweep.subdir"]
    try:
        parts = [str(_with_hydra(work, lambda c, k=key: _resolved(c, k))) for key in keys]
    except OmegaConfBaseException:
        return None
    return Path(*parts).expanduser().absolute()


def resume_problem(config: Any, folder: Path, folder_key: str = "hydra.run.dir") -> str | None:
    """The resume refusal (hydragent.resume_rule) the run would meet in `folder`, asked here
    with the config hash the run will record, so `validate` reports it and a sweep refuses
    before any job writes."""
    from omegaconf import OmegaConf

    from hydragent.record import SAMPLES_FILE
    from hydragent.resume_rule import config_hash, conflict
    from hydragent.secrets import mask_override

    try:
        if not (folder / SAMPLES_FILE).is_file():
            return None
    except OSError:  # a name too long: output_problem reports the folder
        return None
    job = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    resolved = _with_hydra(config, lambda c: OmegaConf.to_container(job, resolve=True))
    mode = str((resolved.get("runner") or {}).get("resume") or "auto")
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    overrides = [mask_override(str(o)) for o in task]
    return conflict(folder, config_hash(resolved), mode, overrides, folder_key=folder_key)


def launch_problems(config: Any, mode: str) -> list[str]:
    """Each `hydra` key the launch resolves that does not resolve (naming the key and the
    environment variable), and an output folder that cannot be made. The user's own folder
    overrides count, also where `validate` shadows them with its scratch folder."""
    from omegaconf.errors import OmegaConfBaseException

    from hydragent.config.resolve import unresolved

    work = _work_copy(config, 0)
    problems, folders = [], {}
    for key in LAUNCH_KEYS:
        try:
            value = _with_hydra(work, lambda c, k=key: _resolved(c, k))
        except OmegaConfBaseException as error:
            problems.append(unresolved(key, error))
            continue
        if key in FOLDER_PARTS and "${" in str(value):
            problems.append(
                f"{key} resolves to {str(value)!r}, which holds '${{': Hydra reads the run "
                f"folder again as a config value (the log file's name), where '${{' starts an "
                f"interpolation; choose a folder name without '${{'"
            )
            continue
        folders[key] = value
    folder_key = FOLDER_KEY[mode]
    if folder_key in folders:
        problem = output_problem(folder_key, str(folders[folder_key]))
        problems += [problem] if problem else []
    return problems


def _work_copy(config: Any, number: int) -> Any:
    """A copy of `config` as job `number` will see it at launch: the user's own folder
    overrides, and the `hydra.job` keys Hydra sets only when it launches a job."""
    import copy

    from omegaconf import OmegaConf, open_dict, read_write

    work = copy.deepcopy(config)
    _inherit_readonly(work.hydra)  # Hydra marks its nodes read-only, and a copy keeps that
    with read_write(work), open_dict(work):
        for key, value in (_USER_DIRS.get() or {}).items():
            OmegaConf.update(work, key, value, merge=False)
        for key, value in (("num", number), ("id", str(number))):
            if OmegaConf.is_missing(work.hydra.job, key):  # set only when a job is launched
                work.hydra.job[key] = value
        if OmegaConf.is_missing(work.hydra.runtime, "output_dir"):
            work.hydra.runtime.output_dir = "."
    return work


def _inherit_readonly(node: Any) -> None:
    """Drop the read-only flag set on `node` and each node under it, so they take the root's."""
    from omegaconf import Container, DictConfig

    node._set_flag("readonly", None)
    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        child = node._get_node(key)
        if isinstance(child, Container):
            _inherit_readonly(child)


def _resolved(config: Any, key: str) -> Any:
    """The value at `key`, every interpolation in it resolved (a node's too: `env_set`)."""
    from omegaconf import DictConfig, OmegaConf

    value = OmegaConf.select(config, key)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _assemble(config: Any) -> Any:
    from hydragent.config.assemble import assemble

    return assemble(config, dry_run=True)


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


def _with_hydra(config: Any, call: Any) -> Any:
    """`call(config)` with HydraConfig set to `config`, so `${hydra:...}` resolves."""
    from hydra.core.hydra_config import HydraConfig

    holder = HydraConfig.instance()
    saved = holder.cfg
    try:
        holder.set_config(config)
        return call(config)
    finally:
        holder.cfg = saved


def output_problem(key: str, folder: str) -> str | None:
    """`hydra.run.dir='...': cannot create it ...` when the run (or sweep) folder, or the first
    folder above it that exists, takes no new entries; None when it can be made. The probe
    file is unlinked at once: nothing is left on disk."""
    import tempfile

    if not folder.strip():
        fresh = "outputs/<date>/<time>" if key == "hydra.run.dir" else "multirun/<date>/<time>"
        return (
            f"{key}={folder!r}: an empty folder name would put the run's files in the current "
            f"folder; give a folder, or leave {key} out for a fresh one ({fresh})"
        )
    path = Path(folder).expanduser().absolute()
    long = [part for part in path.parts if len(part.encode()) > 255]
    if long or len(str(path).encode()) >= 4096:
        what = f"the name {long[0][:40]}... is" if long else "the path is"
        return (
            f"{key}={folder[:80] + '...' if len(folder) > 80 else folder!r}: cannot create "
            f"the output folder: {what} too long for the file system; choose a shorter one"
        )
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
