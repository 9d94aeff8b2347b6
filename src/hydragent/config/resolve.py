"""The config resolved once: interpolations, `???` values, and links between keys.

A key that fails to resolve is a problem naming it, not the first exception; a `_target_`
node's value that only points at another key (`retry: ${retry}`) takes that key's typed
value, so each value is resolved and typed once, whichever node reads it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from hydragent.config.problems import one_line


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
            problems.append(unresolved(child_path, error))
            if missing is not None:
                missing.add(child_path)
            continue
        value = resolve_plain(child, problems, child_path, missing)
        if isinstance(out, dict):
            out[key] = value
        else:
            out.append(value)
    return out


_UNSET_VARIABLE = re.compile(r"Environment variable '([^']+)' not found")


def unresolved(key: str, error: BaseException) -> str:
    """`key: ...` for a value that does not resolve, naming the variable when it is an unset
    environment variable (OmegaConf's message adds the full key and the object type)."""
    text = str(getattr(error, "msg", "") or error).split("\n")[0]
    found = _UNSET_VARIABLE.search(text)
    if found:
        name = found[1]
        return (
            f"{key}: the environment variable {name} is not set (${{oc.env:{name}}}); set it, "
            f"or give a default: ${{oc.env:{name},VALUE}}"
        )
    return f"{key}: {one_line(text)}"


_REFERENCE = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


def link(node: Any, raw: Any, plain: dict[str, Any]) -> None:
    """Replace, inside `node`, each value whose raw form is exactly `${a.b}` by the value at
    `a.b` in `plain` (already typed); walks nested mappings and lists alike."""
    if isinstance(node, dict) and isinstance(raw, dict):
        keys: Any = [k for k in node if k in raw]
    elif isinstance(node, list) and isinstance(raw, list) and len(node) == len(raw):
        keys = range(len(node))
    else:
        return
    for key in keys:
        source = raw[key]
        found = _REFERENCE.fullmatch(source) if isinstance(source, str) else None
        if found is None:
            link(node[key], source, plain)
            continue
        value: Any = plain
        for part in found[1].split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            node[key] = copy.deepcopy(value)


#: `_target_` keys whose value names a file or folder (or, for the prompts, may name one)
PATH_KEYS = frozenset(
    {"path", "responses_file", "problem_file", "system_prompt", "prompt_template"}
)


def anchored(node: dict[str, Any], launch_dir: str) -> dict[str, str]:
    """The node's relative file values, made absolute against `launch_dir` (where hydragent
    was started): a key of PATH_KEYS whose value, read from there, names an existing file or
    folder. Hydra's `hydra.job.chdir=true` then changes nothing: validate, the pre-flight and
    the run's own build all read the same file. Other values (a dataset name, inline prompt
    text, a file that is not there) stay as they are."""
    from pathlib import Path

    found = {}
    for key in PATH_KEYS & set(node):
        value = node[key]
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            continue
        path = Path(value).expanduser()
        if path.is_absolute() or "://" in value:
            continue
        try:
            exists = (Path(launch_dir) / path).exists()
        except OSError:  # a name too long for the file system names nothing
            continue
        if exists:
            found[key] = str(Path(launch_dir) / path)
    return found
