"""Keep secrets off disk and out of logs: one rule for what a secret key looks like."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
# `token` counts only as a whole word part (hf_token, token, accessToken), not in max_tokens.
SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|password|passwd|credential|authorization|session_key"
    r"|token$|(^|[_-])token([_-]|$))",
    re.I,
)
# Keys that match the pattern but hold no secret (counts, limits, ids).
NOT_SECRET = re.compile(
    r"(max_tokens|max_new_tokens|tokens?_per|token_usage|tokenizer|tokens$)", re.I
)


# `${oc.env:NAME}` or `${oc.env:NAME,null}` names where a secret comes from without holding it.
ENV_REFERENCE = re.compile(r"^\$\{oc\.env:[A-Za-z_][A-Za-z0-9_]*(,\s*(null)?)?\}$")


def is_secret_key(key: Any) -> bool:
    text = str(key)
    return bool(SECRET_KEY.search(text)) and not NOT_SECRET.search(text)


def is_env_reference(value: Any) -> bool:
    """True for an unresolved environment interpolation, which is safe to show."""
    return isinstance(value, str) and bool(ENV_REFERENCE.match(value.strip()))


def _needs_mask(key: Any, value: Any) -> bool:
    return is_secret_key(key) and value not in (None, "") and not is_env_reference(value)


def mask_secrets(value: Any) -> Any:
    """A copy of nested dicts/lists with every secret-looking key's value masked."""
    if isinstance(value, Mapping):
        return {k: (MASK if _needs_mask(k, v) else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


def mask_override(override: str) -> str:
    """Mask the value of a command-line override such as `model.api_key=sk-...`."""
    key, sep, value = override.partition("=")
    secret = sep and _needs_mask(key.rsplit(".", 1)[-1], value if value != "null" else None)
    return f"{key}{sep}{MASK}" if secret else override
