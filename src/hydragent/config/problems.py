"""Config problems: the one error type `validate` and `run` raise, and how its lines read.

Every problem is one line that names the key, the value, the valid choices and the fix, e.g.
`runner.max_concurency is not a key of runner (did you mean max_concurrency?); valid keys: ...`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from hydragent.secrets import is_secret_key

#: how close a name must be (difflib ratio) to be offered as "did you mean".
TYPO_CUTOFF = 0.8


class ConfigError(ValueError):
    """Every problem found in a config; the CLI prints them on one line and exits 2."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = f"{len(problems)} config errors: " if len(problems) > 1 else ""
        super().__init__(count + "; ".join(problems))

    def __reduce__(self) -> tuple[type, tuple[list[str]]]:
        """Survives pickling, so a sweep job in a joblib/submitit worker reports it intact."""
        return (type(self), (self.problems,))


class PreflightFailed(BaseException):
    """Carries a config error out of a Hydra callback: Hydra turns an Exception raised there
    into a warning, so it travels as a BaseException (the way SystemExit stops a program) and
    the CLI unwraps it (config/preflight.py)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def nearest(name: str, candidates: Iterable[str], cutoff: float = TYPO_CUTOFF) -> str | None:
    """The candidate `name` most likely misspells, or None."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=cutoff)
    return close[0] if close else None


def unknown_key(path: str, owner: str, valid: Iterable[str], extra: str = "") -> str:
    """`path is not a key of owner (did you mean X?); valid keys: ...`."""
    valid = sorted(set(valid))
    key = path.rsplit(".", 1)[-1]
    close = nearest(key, valid, cutoff=0.6)
    hint = f" (did you mean {close}?)" if close else ""
    return f"{path} is not a key of {owner}{hint}; valid keys: {', '.join(valid) or 'none'}{extra}"


def shown(key: str, value: Any) -> str:
    """`key=value` for an error line, without the value when the key holds a secret."""
    return key if is_secret_key(key.rsplit(".", 1)[-1]) else f"{key}={value!r}"


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def join(path: str, key: Any) -> str:
    """`path.key` (or `path[key]` for a list index), for naming nested config keys."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)
