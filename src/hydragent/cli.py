"""The `hydragent` command: run, validate, recipes, report, cache.

`run` and `validate` are real Hydra apps (so `--cfg job`, `--info`, `--config-dir`, `-m` and
`hydra.*` overrides work); the others are plain subcommands. Exit codes: 0 success, 2 a usage
or config error (one line; HYDRA_FULL_ERROR=1 shows the traceback), 1 a runtime failure.
Heavy modules are imported only by the subcommand that needs them, so startup stays fast.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

USAGE = """\
usage: hydragent COMMAND [ARGS]

commands:
  run [OVERRIDES]        run one job; `run -m ...` a sweep (Hydra flags work: --cfg job, --info)
  validate [OVERRIDES]   every check `run` makes, in a dry run (no weights, no model call)
  recipes                list the checked-in recipes with their descriptions
  report DIR             compare the jobs in DIR: tables with paired comparisons,
                         report.html, PNG plots, results.parquet/.csv  [--baseline N]
  view DIR               write DIR/view.html: jobs, samples, transcripts, comparisons
                         (offline; --serve shows it on 127.0.0.1)
  cache stats|clear      show or empty the response cache

examples:
  hydragent run model=scripted task=smoke
  hydragent run model=openai model.model_id=gpt-4o-mini generation.temperature=0
  hydragent run -m model=scripted task=json_extraction scorer=json seed=0,1
  hydragent validate model=bedrock roles=none

model-written code (agent=code, tools=python, scorer=code_exec) runs under sandbox=auto:
bubblewrap namespaces, seccomp and landlock. sandbox=process is UNSAFE (no kernel isolation).
sandbox=landlock (no namespaces) leaves visible to the code: stat() of any host path
(existence, size, owner, mode, times); readlink() of any host symlink (its target).
"""

COMMANDS = ("run", "validate", "recipes", "report", "view", "cache")
# Flags that make Hydra print the composed config: their output is masked.
CONSOLE_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help")


class _DropHydraJobBanner(io.TextIOBase):
    """Stderr without Hydra's "Error executing job with overrides" line: the error itself
    is reported on one line by `report_error`, and overrides can be long."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if text.startswith("Error executing job with overrides"):
            return len(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class UsageError(Exception):
    """A bad command line: printed on one line, exit code 2."""


def entry() -> NoReturn:
    """The `hydragent` command: `main`, then an exit that skips freeing the interpreter's
    objects one by one (0.2 s after every run of thousands of samples: docs/benchmarks.md,
    P1-scale). The skip is an atexit handler registered before any other, so it runs last:
    non-daemon threads have been joined and every other handler (logging's flush, a sweep
    launcher's pool) has run, and standard output and error are flushed first. When `main`
    raises, the interpreter exits as it always does."""
    returned: list[int] = []

    def exit_now() -> None:
        if returned:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(returned[0])

    atexit.register(exit_now)
    returned.append(main())
    sys.exit(returned[0])


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in ("-V", "--version"):
        from hydragent import __version__

        print(f"hydragent {__version__}")
        return 0
    handlers: dict[str, Callable[[list[str]], int]] = {
        "run": lambda a: run_hydra_app("run", a),
        "validate": lambda a: run_hydra_app("validate", a),
        "recipes": recipes_command,
        "report": report_command,
        "view": view_command,
        "cache": cache_command,
    }
    if command not in handlers:
        return fail(f"unknown command {command!r}; valid commands: {', '.join(COMMANDS)}", 2)
    try:
        return handlers[command](rest)
    except UsageError as error:
        return fail(str(error), 2)


def fail(message: str, code: int) -> int:
    sys.stderr.write(f"hydragent: {message}\n")
    return code


# --- run / validate: Hydra apps ------------------------------------------------------------


def _run_task(cfg: Any) -> Any:
    """The `hydragent run` job. Its config passed the dry assembly before Hydra wrote anything
    (config/preflight.py); the runner assembles it for real."""
    from hydra.core.hydra_config import HydraConfig

    from hydragent.config.preflight import checked_assembly
    from hydragent.runner import run_job

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    return run_job(cfg, output_dir, checked=checked_assembly())


def _validate_task(cfg: Any) -> None:
    """The `hydragent validate` job: the dry assembly `run` makes, then the resolved config
    (secrets masked) and one line on what will run (config/describe.py)."""
    import yaml

    from hydragent.config.assemble import assemble
    from hydragent.config.describe import ok_line
    from hydragent.config.preflight import checked_assembly

    # a single run's Assembly is the one the pre-flight check made; a sweep's job has its own
    assembly = checked_assembly() or assemble(cfg, dry_run=True)
    sys.stdout.write(yaml.safe_dump(assembly.config, sort_keys=False, default_flow_style=False))
    sys.stdout.write(ok_line(assembly) + "\n")


def _given(key: str, args: list[str]) -> dict[str, str]:
    """{key: value} of the last `key=value` override on the command line, parsed as Hydra
    parses it (quotes removed), or {}."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    words = [a for a in args if a.split("=", 1)[0] == key]
    if not words:
        return {}
    try:
        return {key: str(OverridesParser.create().parse_overrides(words[-1:])[0].value())}
    except Exception:  # Hydra reports the unparsable override itself
        return {}


def run_hydra_app(command: str, args: list[str]) -> int:
    """Run `run` or `validate` as a Hydra app and map its outcome to an exit code."""
    import hydra

    from hydragent.config import conf_dir, prepare_overrides
    from hydragent.config.launchers import missing_launcher_plugin
    from hydragent.config.overrides import check_command_line, explain
    from hydragent.config.preflight import preflight
    from hydragent.config.problems import PreflightFailed
    from hydragent.config.secrets_guard import mask_text, protect_secret_overrides

    started = datetime.now(timezone.utc).replace(microsecond=0)  # summaries' precision
    given = list(args)  # as typed: the resume command after a stop repeats them
    args, secrets = protect_secret_overrides(args)
    args = prepare_overrides(args)
    missing_plugin = missing_launcher_plugin(args)
    if missing_plugin:
        return fail(missing_plugin, 2)
    bad_choice = check_command_line(args)  # `cache=true`: Hydra would not name the group
    if bad_choice is not None:
        return report_error(bad_choice, False, secrets)
    scratch, user_dirs = None, {}
    if command == "validate":  # validation writes nothing: its job folder is thrown away
        scratch = tempfile.mkdtemp(prefix="hydragent-validate-")
        if {"-m", "--multirun"} & set(args):  # the sweep's folder is made before any job
            user_dirs = _given("hydra.sweep.dir", args)
            # right after the overrides: Hydra takes none after a flag's value (`--cfg job`)
            at = 1 + max((i for i, a in enumerate(args) if "=" in a and a[0] != "-"), default=-1)
            args = [*args[:at], f"hydra.sweep.dir={scratch}", *args[at:]]
    task = _run_task if command == "run" else _validate_task
    from hydragent import sweep_end

    sweep_end.finished.clear()
    app = hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(task)

    shows_config = any(a.split("=", 1)[0] in CONSOLE_FLAGS for a in args)
    user_wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [f"hydragent {command}", *args]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us, to choose the exit code
    captured = io.StringIO()
    from hydragent.runner import stop

    try:
        with contextlib.ExitStack() as streams:
            if command == "run":  # SIGINT/SIGTERM: a clean stop (runner/stop.py)
                stop.command_started()
                streams.enter_context(stop.handling())
            streams.enter_context(contextlib.redirect_stderr(_DropHydraJobBanner(sys.stderr)))
            if shows_config:
                streams.enter_context(contextlib.redirect_stdout(captured))
            # the one check before Hydra writes anything, for run and validate alike
            streams.enter_context(preflight(user_dirs=user_dirs, scratch=scratch))
            app()
    except PreflightFailed as failed:
        return report_error(explain(failed.error, args), user_wants_traceback, secrets)
    except stop.Interrupted as stopped:
        return report_stop(stopped, given, started)
    except KeyboardInterrupt:  # before the handlers were in place, or in `validate`
        return fail("stopped (SIGINT)", 130)
    except SystemExit as exit_:  # argparse usage errors (2), --help (0), Hydra's own exits
        if isinstance(exit_.code, str):
            return fail(mask_text(exit_.code, secrets), 1)
        return 0 if exit_.code is None else exit_.code
    except Exception as error:
        return report_error(explain(error, args), user_wants_traceback, secrets, started)
    finally:
        sys.argv = saved_argv
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error
        if shows_config:
            sys.stdout.write(mask_text(captured.getvalue(), secrets))
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if command == "run" and sweep_end.finished:  # a sweep: end with its folder, not job n's
        print(sweep_end.closing_lines(sweep_end.finished[-1]))
    return 0


def report_stop(stopped: Any, given: list[str], started: datetime) -> NoReturn:
    """After SIGINT/SIGTERM: every child process gone, then what was done and the exact
    command that resumes. No traceback."""
    import logging

    from hydragent.runner import stop

    stop.reap()
    for line in stop.stop_lines(stopped, given, started):
        fail(line, stopped.exit_code)
    if {"-m", "--multirun"} & set(given):  # a launcher cleans up its pools at exit
        sys.exit(int(stopped.exit_code))
    # A single run exits now: an abandoned sample's thread (a local engine mid-generation,
    # whose executor the interpreter would join at exit) must not hold the stop for
    # seconds. Every record and the summary are on disk; the logs are flushed here.
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(int(stopped.exit_code))


def is_config_error(error: BaseException) -> bool:
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
        SearchPathException,
    )

    from hydragent.config import ConfigError

    config_errors = (
        ConfigError,
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
        SearchPathException,
    )
    return isinstance(error, config_errors)


def one_line(text: str) -> str:
    """Hydra's multi-line messages (e.g. a list of options) as one line, search path dropped."""
    text = text.split("Config search path:")[0]
    out, listing = "", False
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        if not out:
            out = line
        elif listing and not line.endswith(":"):
            out += (" " if out.endswith(":") else ", ") + line
        else:
            out += ("; " if not out.endswith(":") else " ") + line
        listing = listing or line.endswith(":")
    return out


def report_error(
    error: BaseException,
    traceback_wanted: bool,
    secrets: list[str],
    started: datetime | None = None,
) -> int:
    from hydragent.config.secrets_guard import mask_text

    code = 2 if is_config_error(error) else 1
    if traceback_wanted:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        sys.stderr.write(mask_text(text, secrets))
        return code
    text = one_line(str(error)) or type(error).__name__
    if code == 2:  # one line per problem, each naming its key; secret values never shown
        from hydragent.config import ConfigError
        from hydragent.secrets import environment_secrets

        known = [*secrets, *environment_secrets()]
        lines = error.problems if isinstance(error, ConfigError) and error.problems else [text]
        for line in lines:
            fail(f"config error: {mask_values(one_line(line), known)}", 2)
        return 2
    message = mask_text(text, secrets)
    from hydragent.runner.errors import RunFailed, failed_sweep_jobs

    if isinstance(error, RunFailed):  # its causes were printed above: no traceback
        jobs = failed_sweep_jobs(error, started) if started else []
        if len(jobs) > 1 and error.output_dir is not None:  # Hydra's sweepers raise the first
            where = error.output_dir.parent
            text = f"{len(jobs)} jobs of the sweep in {where} failed: {'; '.join(jobs)}"
            message = mask_text(f"{text}; causes above and in each job's hydragent.log", secrets)
            if "Continue with: " in str(error):  # limits: the budget ran out for the sweep
                message += "; " + mask_text(one_line(str(error)), secrets)
        return fail(f"run failed: {message}", 1)
    return fail(f"{type(error).__name__}: {message} (HYDRA_FULL_ERROR=1 shows the traceback)", 1)


def mask_values(text: str, secrets: list[str]) -> str:
    """Every known secret value masked; `key: text` stays, unlike mask_text's line rule."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# --- plain subcommands ---------------------------------------------------------------------


def _no_arguments(command: str, args: list[str]) -> None:
    if args:
        raise UsageError(f"`hydragent {command}` takes no arguments, got {' '.join(args)}")


def recipes_command(args: list[str]) -> int:
    from hydragent.config import list_recipes

    _no_arguments("recipes", args)
    recipes = list_recipes()
    if not recipes:
        print("no recipes found")
        return 0
    width = max(len(r.name) for r in recipes)
    for recipe in recipes:
        print(f"{recipe.name:<{width}}  {recipe.description}")
        print(f"{'':<{width}}    {recipe.command}")
    return 0


def report_command(args: list[str]) -> int:
    from hydragent.report.command import report_command as command

    return command(args)


def view_command(args: list[str]) -> int:
    from hydragent.report.command import view_command as command

    return command(args)


def cache_command(args: list[str]) -> int:
    actions = ("stats", "clear")
    if not args or args[0] not in actions or len(args) > 2:
        raise UsageError(f"usage: hydragent cache {{{'|'.join(actions)}}} [PATH]")
    from hydragent.runner import cache

    path = Path(args[1]) if len(args) == 2 else None
    action = cache.cache_stats if args[0] == "stats" else cache.cache_clear
    try:
        print(action(path))
    except cache.CacheUnreadable as error:  # names the file and the fix
        return fail(str(error), 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
