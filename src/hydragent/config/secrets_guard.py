"""Keep secrets out of everything Hydra writes or prints.

Two measures, because Hydra copies command-line overrides into many places (overrides.yaml,
hydra.yaml, multirun.yaml, log lines, `--cfg` output):

1. Before Hydra parses the command line, a secret given there (`model.api_key=sk-...`) moves
   into a private environment variable and the override becomes `${oc.env:THAT_VARIABLE}`, so
   Hydra only ever sees the reference; it resolves when the model is built.
2. Literal secrets written in config files (e.g. a git-ignored conf/local/) are masked when
   hydragent writes `.hydra/` (Hydra's own writer is off: `hydra.output_subdir: null`) and
   when it rewrites the sweep's multirun.yaml, and `--cfg`/`--info` output is masked by line.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from hydragent.secrets import (
    MASK,
    is_env_reference,
    is_secret_key,
    mask_override,
    mask_secrets,
    protect_nested_override,
)

SECRET_ENV_PREFIX = "HYDRAGENT_SECRET_"
HYDRA_DIR = ".hydra"


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def protect_secret_overrides(
    args: list[str], environ: MutableMapping[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """Move secret override values into environment variables; returns (args, secret values).

    A comma-separated value (a sweep) gets one variable per element.
    """
    environ = os.environ if environ is None else environ
    rewritten: list[str] = []
    secrets: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        name = key.lstrip("+~").split("@", 1)[0]
        if (
            arg.startswith("-")
            or not sep
            or not is_secret_key(name.rsplit(".", 1)[-1])
            or value in ("", "null")
            or value.startswith("${")
        ):
            if not arg.startswith("-") and value[:1] in "[{":  # secrets nested in the value
                arg, moved = protect_nested_override(arg, environ)
                secrets += moved
            rewritten.append(arg)
            continue
        elements = value.split(",")
        references = []
        for index, element in enumerate(elements):
            suffix = f"_{index}" if len(elements) > 1 else ""
            variable = SECRET_ENV_PREFIX + re.sub(r"\W", "_", name).upper() + suffix
            environ[variable] = _unquote(element)
            secrets.append(_unquote(element))
            references.append(f"${{oc.env:{variable}}}")
        rewritten.append(f"{key}={','.join(references)}")
    return rewritten, secrets


_LINE = re.compile(
    r"^(?P<lead>\s*(?:-\s+)?(?P<key>[\w.@+~-]+)\s*(?P<sep>[:=])\s*)(?P<value>\S.*?)\s*$"
)
_NOT_A_VALUE = {"null", "~", "''", '""', "???", "|", ">"}


def mask_text(text: str, known_secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Mask `key: value` and `key=value` lines whose key looks secret, and any known value."""
    for secret in sorted((s for s in known_secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    lines = []
    for line in text.splitlines(keepends=True):
        match = _LINE.match(line.rstrip("\n"))
        if match and is_secret_key(match["key"].rsplit(".", 1)[-1]):
            value = match["value"]
            if value not in _NOT_A_VALUE and not is_env_reference(_unquote(value)):
                ending = "\n" if line.endswith("\n") else ""
                line = (
                    f"{match['lead']}'{MASK}'{ending}"
                    if match["sep"] == ":"
                    else (f"{match['lead']}{MASK}{ending}")
                )
        lines.append(line)
    return "".join(lines)


def _mask_strings(value: Any) -> Any:
    """Mask override-like strings (`k=v`, or Hydra's `k=v,k2=v2` override_dirname) anywhere."""
    if isinstance(value, dict):
        return {k: _mask_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_strings(v) for v in value]
    if isinstance(value, str) and "=" in value:
        return ",".join(mask_override(part) for part in value.split(","))
    return value


def masked_container(value: Any) -> Any:
    """A plain, secret-free copy of a config (unresolved: interpolations stay as written)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    return _mask_strings(mask_secrets(value))


def _save_yaml(value: Any, path: Path) -> None:
    """Write atomically, so concurrent sweep jobs never see a half-written file."""
    from omegaconf import OmegaConf

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(OmegaConf.to_yaml(OmegaConf.create(value)), encoding="utf-8")
    os.replace(temporary, path)


def write_masked_hydra_files(config: Any) -> Path:
    """Write `.hydra/{config,hydra,overrides}.yaml` for the job in `config`, secrets masked."""
    full = masked_container(config)
    hydra_node = full.pop("hydra")
    folder = Path(config.hydra.runtime.output_dir) / HYDRA_DIR
    _save_yaml(full, folder / "config.yaml")
    _save_yaml({"hydra": hydra_node}, folder / "hydra.yaml")
    _save_yaml(hydra_node.get("overrides", {}).get("task", []), folder / "overrides.yaml")
    return folder


def mask_multirun_file(config: Any) -> None:
    """Rewrite the sweep's multirun.yaml (written by Hydra's sweeper) with secrets masked."""
    path = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
    if path.is_file():
        from omegaconf import OmegaConf

        _save_yaml(masked_container(OmegaConf.load(path)), path)


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra-core is a dependency
    Callback = object  # type: ignore[assignment,misc]


class MaskedHydraFiles(Callback):  # type: ignore[misc,valid-type]
    """Hydra callback (conf/config.yaml `hydra.callbacks`) that writes the masked files."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        from hydra.types import RunMode

        write_masked_hydra_files(config)
        if config.hydra.mode == RunMode.MULTIRUN:
            mask_multirun_file(config)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        mask_multirun_file(config)
