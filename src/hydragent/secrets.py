"""Keep secrets off disk and out of logs: one rule for what a secret key looks like."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
SECRET_KEY = re.compile(
    r"(api[_-]?key|token|secret|password|passwd|credential|authorization|session_key)", re.I
)
# Keys that match the pattern but hold no secret (counts, limits, ids).
NOT_SECRET = re.compile(
    r"(max_tokens|max_new_tokens|tokens?_per|token_usage|tokenizer|tokens$)", re.I
)


def is_secret_key(key: Any) -> bool:
    text = str(key)
    return bool(SECRET_KEY.search(text)) and not NOT_SECRET.search(text)


def mask_secrets(value: Any) -> Any:
    """A copy of nested dicts/lists with every secret-looking key's value masked."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if is_secret_key(k) and v not in (None, "") else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


def mask_override(override: str) -> str:
    """Mask the value of a command-line override such as `model.api_key=sk-...`."""
    key, sep, _ = override.partition("=")
    return f"{key}{sep}{MASK}" if sep and is_secret_key(key.rsplit(".", 1)[-1]) else override
