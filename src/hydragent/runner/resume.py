"""Resume into a run folder without ever losing a result (DESIGN.md §4).

samples.jsonl is append-only: a rerun appends the samples it runs again, and the last record
of an id is its result. What the folder holds decides what a rerun does, by `runner.resume`:

- `auto` (default): records of the same config_hash are kept, failed and missing samples run
  again. Records of another config make the run refuse (exit 2, before anything is written),
  saying how to go on.
- `new_config`: as `auto`, but when the folder holds another config's results, they are set
  aside first: samples.jsonl, summary.json, samples.garbled.jsonl and .hydra/ move (a rename,
  nothing rewritten) to `superseded/<their config_hash>_<UTC time>/`, a run folder of its
  own that `hydragent report` reads.
- `fresh`: set aside whatever results the folder holds, of any config, and start over.

The check runs twice on purpose: from the `ResumeGuard` Hydra callback, listed before the
callback that writes .hydra/, so a refusal leaves the earlier .hydra/ as it was; and from
`run_job`, for the Python API. The second finds nothing left to do. Hydra turns an Exception
raised in a callback into a warning, so the callback raises `ResumeRefused`, a BaseException
the CLI unwraps (as for config/preflight.py).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from hydragent.config import ConfigError
from hydragent.config.problems import PreflightFailed
from hydragent.config.schemas import ResumeMode
from hydragent.record import GARBLED_FILE, SAMPLES_FILE, SUMMARY_FILE
from hydragent.resume_rule import SUPERSEDED_DIR, Scan, config_hash, conflict, scan
from hydragent.runner.records import move_garbled_aside
from hydragent.secrets import mask_override

log = logging.getLogger(__name__)
RESUME_MODES: tuple[str, ...] = get_args(ResumeMode)
RESULT_FILES = (SAMPLES_FILE, SUMMARY_FILE, GARBLED_FILE, ".hydra")


class ResumeConflict(ConfigError):
    """The run folder holds results of another config and runner.resume=auto: exit 2."""

    def __init__(self, problems: list[str] | str) -> None:
        super().__init__([problems] if isinstance(problems, str) else problems)


class ResumeRefused(PreflightFailed):
    """Carries a ResumeConflict out of the Hydra callback: Hydra turns an Exception raised
    there into a warning and goes on to overwrite .hydra/. The CLI reports the conflict."""

    def __reduce__(self) -> tuple[type, tuple[BaseException]]:
        """Survives pickling, so a joblib sweep job reports the conflict itself."""
        return (type(self), (self.error,))


def set_aside(folder: Path, old_hash: str | None) -> Path:
    """Move the folder's results into superseded/<hash>_<time>/ by rename."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    target = folder / SUPERSEDED_DIR / f"{old_hash or 'unknown'}_{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = target.with_name(f"{old_hash or 'unknown'}_{stamp}_{suffix}")
    target.mkdir(parents=True)
    for name in RESULT_FILES:
        if (folder / name).exists():
            os.replace(folder / name, target / name)
    log.warning("Earlier results (config_hash %s) set aside in %s", old_hash, target)
    return target


def prepare_folder(
    folder: Path, chash: str, mode: str = "auto", overrides: list[str] | None = None
) -> Scan:
    """Make `folder` ready for a run of config `chash` and return the records it keeps
    (every record of that config, in file order). Raises ResumeConflict (exit 2) when the
    folder holds another config's results and `mode` is auto; writes nothing then."""
    if mode not in RESUME_MODES:
        raise ConfigError([f"runner.resume={mode}: valid: {', '.join(RESUME_MODES)}"])
    path = folder / SAMPLES_FILE
    found = scan(path)
    refusal = conflict(folder, chash, mode, overrides, found)
    if refusal:
        raise ResumeConflict(refusal)
    others = sorted({r.get("config_hash") for r in found.records} - {chash}, key=str)
    has_results = path.exists() or (folder / SUMMARY_FILE).exists()
    if has_results and (mode == "fresh" or others):
        set_aside(folder, str(others[-1]) if others else chash)
        return Scan()
    side = move_garbled_aside(path, found)
    if side is not None:
        offsets = ", ".join(str(offset) for offset, _ in found.garbled)
        log.warning(
            "%s: %d line(s) that are not records (at byte %s) moved to %s, kept as written",
            path,
            len(found.garbled),
            offsets,
            side,
        )
    _end_with_newline(path)
    return found


def _end_with_newline(path: Path) -> None:
    """A record whose newline a kill cut off would otherwise join the next record appended."""
    if path.exists() and path.stat().st_size:
        with path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


class ResumeGuard(Callback):
    """Checks the run folder before any job file is written (see the module docstring).
    Listed in conf/config.yaml `hydra.callbacks` before masked_hydra_files."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.runtime.output_dir))
        if not any((folder / name).exists() for name in (SAMPLES_FILE, SUMMARY_FILE)):
            return  # a new folder (and every `validate`): nothing to keep or refuse
        job = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            resolved = OmegaConf.to_container(job, resolve=True)
        except Exception:  # e.g. an unset ${oc.env:...}: validation reports it, in its words
            return
        runner = resolved.get("runner") or {}
        try:
            prepare_folder(
                folder,
                config_hash(resolved),
                str(runner.get("resume") or "auto"),
                [
                    mask_override(str(o))
                    for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
                ],
            )
        except ConfigError as error:
            raise ResumeRefused(error) from error
