"""Hydra's own errors about the command line, in hydragent's words: one line naming the
override's key and the valid choices (Hydra says "Could not override 'x'" or "Got bool")."""

from __future__ import annotations

import re
from typing import Any

from hydragent.config.problems import ConfigError, unknown_key


def group_options(group: str) -> list[str]:
    """The options of a config group (conf/<group>/*.yaml; recipes for `recipe`)."""
    from hydragent.config.paths import conf_dir, recipes_dir

    folder = recipes_dir() if group == "recipe" else conf_dir() / group
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml"))


def group_value_problems(args: list[str]) -> list[str]:
    """`cache=true`, `task=null`, `model=1`: a group takes an option name. Hydra would stop
    with a bare ValueError that names neither the group nor its options."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    words = [a for a in args if "=" in a and not a.startswith("-")]
    problems = []
    for word in words:
        try:
            (override,) = OverridesParser.create().parse_overrides([word])
        except OverrideParseException:
            continue  # Hydra reports it, with the override (see explain)
        group = override.key_or_group
        options = group_options(group) if "." not in group and "/" not in group else []
        if not options or override.is_delete():
            continue
        value = override.value()
        value = getattr(value, "list", value)  # a sweep's choices: task=smoke,null
        values = value if isinstance(value, list) else [value]
        names = [n for v in values for n in (v if isinstance(v, list) else [v])]  # [a,b],[c]
        if all(isinstance(n, str) for n in names):
            continue
        problems.append(
            f"{word}: {group} takes an option name (~{group} drops it); valid: {', '.join(options)}"
        )
    return problems


def explain(error: BaseException, args: list[str]) -> BaseException:
    """A ConfigError saying Hydra's composition error in one line with the key and the valid
    choices; the error itself when it is not one of those."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    text = str(error)
    if isinstance(error, ConfigCompositionException):
        cause = error.__cause__
        found = re.match(r"Could not override '([^']+)'", text)
        parent = getattr(cause, "parent_node", None)
        if found and parent is not None and hasattr(parent, "keys"):
            key = found[1]
            owner = str(parent._get_full_key(None) or "") or "the config"
            added = next((a for a in args if a.split("=", 1)[0] == key), f"{key}=VALUE")
            keys = [str(k) for k in parent]
            if owner == key:  # a dict given whole to a node that holds keys as they come
                return ConfigError([_dict_whole(key, added)])
            hint = _deeper(key, owner, parent)
            if hint:  # scorer.tolerance: the key is one level down, under the chosen option
                where = f"{hint[0]}.{hint[1]}"
                problem = f"{key} is not a key of {owner} (did you mean {where}?); its keys: "
                return ConfigError([problem + ", ".join(keys)])
            return ConfigError([unknown_key(key, owner, keys, _fix(added, key, keys, parent))])
        merging = re.match(r"Error merging override (\S+?)=(.*)", text)
        if merging and cause is not None:  # hydra.job.chdir=maybe: a value the key's type refuses
            return ConfigError([_refused_value(merging[1].lstrip("+~"), merging[2], cause)])
    if isinstance(error, MissingConfigException):
        found = re.search(r"Could not load '([^'/]+)/([^']+)'", text)
        if found and "Available options" not in text:
            group, name = found[1], found[2]
            options = group_options(group)
            if options:
                return ConfigError([f"{group}: no option {name!r}; valid: {', '.join(options)}"])
    if isinstance(error, OverrideParseException):
        bad = _unparsable(args)
        odd = _odd_key_characters(bad or "")
        if bad and odd:
            key = bad.split("=", 1)[0].lstrip("+~")
            return ConfigError(
                [
                    f"{key}: a config key holds only ASCII letters, digits, _ and - (joined by "
                    f"., / or @), not {', '.join(map(repr, odd))}; check the spelling of {key}"
                ]
            )
        if bad:
            lines = [line for line in text.splitlines() if line.strip()]
            reason = "; ".join(
                line for line in lines if not line.startswith(("Error parsing", "See https"))
            )
            return ConfigError(
                [
                    f"{bad}: Hydra cannot parse this override ({reason}); quote a value that "
                    f"holds spaces, braces or brackets: '{bad.split('=', 1)[0]}=\"...\"'"
                ]
            )
    return error


def _dict_whole(key: str, override: str) -> str:
    """`runner.backend_concurrency={scripted:2}`: Hydra merges a dict into a node of the
    config key by key, and refuses keys the node does not hold yet. Says the forms that work,
    with the user's own keys and values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    value = override.split("=", 1)[1] if "=" in override else "{...}"
    try:
        given = OverridesParser.create().parse_override(override.lstrip("+~")).value()
    except Exception:  # not a plain dict: show the form with placeholders
        given = None
    each = " ".join(
        f"+{key}.{k}={v}" for k, v in (given.items() if isinstance(given, dict) else [])
    )
    return (
        f"{override}: {key} takes its keys one at a time ({each or f'+{key}.NAME=VALUE'}), "
        f"or replaced whole with ++{key}={value}"
    )


def _refused_value(key: str, value: str, cause: BaseException) -> str:
    """`KEY=VALUE: why; valid: ...`, from OmegaConf's first line (the rest repeats the key)."""
    why = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    valid = "; valid: true, false" if "valid bool" in why else ""
    return f"{key}={value}: {why}{valid}"


def _fix(override: str, key: str, keys: list[str], parent: Any) -> str:
    """The command that works: the nearest key's override (`runner.max_concurrency=8` for
    `runner.max_concurency=8`), and `+KEY=VALUE` only where the node takes new keys (a
    `_target_` whose constructor names the key): a plain group or the top level takes none,
    so there `+` would fail the same way."""
    from hydragent.config.problems import nearest

    head, leaf = key.rpartition(".")[0], key.rsplit(".", 1)[-1]
    value = override.split("=", 1)[1] if "=" in override else "VALUE"
    fixes = []
    close = nearest(leaf, keys, cutoff=0.6)
    if close:
        fixes.append(f"{f'{head}.' if head else ''}{close}={value}")
    if _takes_new_key(parent, leaf):
        fixes.append(f"+{key}={value} to add it")
    return f"; use {' or '.join(fixes)}" if fixes else ""


def _takes_new_key(parent: Any, leaf: str) -> bool:
    """Whether a `_target_` node's constructor names `leaf` (then `+` adds a real argument)."""
    from hydragent.config.targets import locate, target_parameters

    target = parent.get("_target_") if hasattr(parent, "get") else None
    if not isinstance(target, str):
        return False
    try:
        return leaf in target_parameters(locate(target)).names
    except Exception:  # a target that does not import is its own error, found later
        return False


def _deeper(key: str, owner: str, parent: Any) -> tuple[str, str] | None:
    """(`scorer.numeric`, `tolerance`) when `scorer.tolerance` names a key of the one node
    under `scorer` (a group whose option is packaged under its name)."""
    rest = key.removeprefix(f"{owner}.") if owner != "the config" else key
    leaf = rest.split(".", 1)[0]
    for child in parent:
        node = parent.get(child)
        if hasattr(node, "keys") and leaf in node:
            return (f"{owner}.{child}" if owner != "the config" else str(child), rest)
    children = [c for c in parent if hasattr(parent.get(c), "keys")]
    if len(children) == 1 and owner in ("scorer", "tools"):
        return (f"{owner}.{children[0]}", rest)
    return None


_KEY_CHARACTER = re.compile(r"[A-Za-z0-9_\-./@\[\]]")


def _odd_key_characters(override: str) -> list[str]:
    """The characters of an override's key (before `=`) that Hydra's grammar never takes in
    a key (`é` in `+runner.max_concurrencé=2`), in order, once each."""
    key = override.split("=", 1)[0].lstrip("+~") if "=" in override else ""
    return list(dict.fromkeys(c for c in key if not _KEY_CHARACTER.fullmatch(c)))


def _unparsable(args: list[str]) -> str | None:
    """The first command-line override Hydra's grammar rejects."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for word in args:
        if word.startswith("-") or "=" not in word:
            continue
        try:
            parser.parse_overrides([word])
        except OverrideParseException:
            return word
    return None


def check_command_line(args: list[str]) -> ConfigError | None:
    """Problems Hydra would report without naming the group (see group_value_problems)."""
    problems = group_value_problems(args)
    return ConfigError(problems) if problems else None
