"""Keep secrets off disk and out of logs: one rule for what a secret key looks like."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
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


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: Any) -> bool:
    """Whether a key names a secret. Cached: the runner masks every sample's transcript, and
    its keys are the same few (`role`, `content`, ...) thousands of times."""
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
    """Mask the value of a command-line override such as `model.api_key=sk-...`, and each
    secret nested in a list or dict value (`model.model_list=[{api_key:sk-...}]`)."""
    key, sep, value = override.partition("=")
    name = key.lstrip("+~").split("@", 1)[0].rsplit(".", 1)[-1]
    if sep and _needs_mask(name, value if value != "null" else None):
        return f"{key}{sep}{MASK}"
    if sep and value[:1] in "[{":
        return f"{key}{sep}{_SECRET_PAIR.sub(_mask_pair, value)}"
    return override


# Shapes of credentials that a server may echo back in an error body (an Authorization header,
# a provider key) even when the run never saw the value: masked in logs and stored errors.
# Each is keyed by the literal it starts with, and `token` is the part masked (a Bearer header
# keeps its scheme). Patterns begin with that literal so that `re` finds candidates by a fast
# substring search; the word boundary before it is checked apart (a leading \b turns that off,
# and every record holding an id such as "task-1" then took 0.4 ms to scan).
_CREDENTIALS = {
    "Bearer": r"Bearer\s+(?P<token>[A-Za-z0-9._~+/=-]{8,})",
    "Basic": r"Basic\s+(?P<token>[A-Za-z0-9._~+/=-]{8,})",
    "sk-": r"(?P<token>sk-[A-Za-z0-9_-]{16,})",
    "hf_": r"(?P<token>hf_[A-Za-z0-9]{16,})",
    "AKIA": r"(?P<token>AKIA[0-9A-Z]{16})\b",
}
_CREDENTIAL_PATTERNS = {mark: re.compile(shape) for mark, shape in _CREDENTIALS.items()}


def _credentials(text: str) -> Iterator[re.Match[str]]:
    """Credential-shaped tokens in `text` that start a word."""
    for mark, pattern in _CREDENTIAL_PATTERNS.items():
        if mark in text:
            for match in pattern.finditer(text):
                before = text[match.start() - 1] if match.start() else " "
                if not (before.isalnum() or before == "_"):
                    yield match


def has_credential_shape(text: str) -> bool:
    """True when `text` holds a Bearer/Basic token, an sk-/hf_ key or an AWS key id."""
    return next(_credentials(text), None) is not None


def mask_credentials(text: str) -> str:
    """`text` with every credential-shaped token masked (overlapping ones as one)."""
    spans: list[list[int]] = []
    for start, end in sorted((m.start("token"), m.end("token")) for m in _credentials(text)):
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    for start, end in reversed(spans):
        text = f"{text[:start]}{MASK}{text[end:]}"
    return text


# `api_key: VALUE`, `"token": "VALUE"`, `password=VALUE` inside free text or an override value.
_SECRET_PAIR = re.compile(
    r"""(?P<lead>(?P<q1>['"]?)(?P<key>[\w-]+)(?P=q1)\s*[:=]\s*)"""
    r"""(?P<value>\$\{[^}]*\}|'[^']*'|"[^"]*"|[^\s,{}\[\]'"]+)"""
)
MIN_SECRET_LENGTH = 4
AUTH_SCHEMES = ("bearer", "basic")
MIN_ENV_SECRET_LENGTH = 8


def _mask_pair(match: re.Match[str]) -> str:
    value = match["value"]
    bare = value[1:-1] if value[:1] in "'\"" and len(value) >= 2 else value
    if bare.lower() in AUTH_SCHEMES:  # `Authorization: Bearer <token>`: the token is masked
        return match[0]
    if not _needs_mask(match["key"], bare if bare != "null" else None):
        return match[0]
    quote = value[0] if value[:1] in "'\"" else ""
    return f"{match['lead']}{quote}{MASK}{quote}"


def redact_text(text: str, known: Iterable[str] = (), pairs: bool = True) -> str:
    """`text` with every known secret value, every credential-shaped token (Bearer header,
    sk-/hf_ key, AWS key id) and, with `pairs`, every `secret_key: value` pair replaced by
    the mask. Longer secrets go first, so a secret that contains another is masked whole.
    Log lines mask pairs; stored transcripts do not (an answer may say "token: 5")."""
    for secret in sorted(set(known), key=len, reverse=True):
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    if pairs:
        text = _SECRET_PAIR.sub(_mask_pair, text)
    return mask_credentials(text)


def secret_values(value: Any) -> list[str]:
    """The values held under secret-looking keys anywhere in a resolved config."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, child in value.items():
            if is_secret_key(key) and isinstance(child, str):
                if len(child) >= MIN_SECRET_LENGTH and not is_env_reference(child):
                    found.append(child)
            else:
                found += secret_values(child)
    elif isinstance(value, list | tuple):
        for child in value:
            found += secret_values(child)
    return found


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (OPENAI_API_KEY, HF_TOKEN,
    AWS_SECRET_ACCESS_KEY, the CLI's HYDRAGENT_SECRET_*): a client library may read one
    without the config naming it, and quote it in an error."""
    environ = os.environ if environ is None else environ
    return [
        value
        for name, value in environ.items()
        if is_secret_key(name) and len(value) >= MIN_ENV_SECRET_LENGTH
    ]


SECRET_ENV_PREFIX = "HYDRAGENT_SECRET_"


def protect_nested_override(
    override: str, environ: MutableMapping[str, str] | None = None
) -> tuple[str, list[str]]:
    """Move each secret nested in a list or dict override value into its own environment
    variable: `model.model_list=[{litellm_params:{api_key:sk-1}}]` becomes
    `...{api_key:${oc.env:HYDRAGENT_SECRET_MODEL_MODEL_LIST_0}}...`. Hydra then only ever sees
    the reference (in overrides.yaml, hydra.yaml, multirun.yaml, `--cfg hydra`), and the value
    resolves when the model is built. Returns (override, the secret values moved)."""
    environ = os.environ if environ is None else environ
    key, sep, value = override.partition("=")
    if not sep or value[:1] not in "[{":
        return override, []
    stem = SECRET_ENV_PREFIX + re.sub(r"\W", "_", key.lstrip("+~").split("@", 1)[0]).upper()
    moved: list[str] = []

    def to_reference(match: re.Match[str]) -> str:
        raw = match["value"]
        bare = raw[1:-1] if raw[:1] in "'\"" and len(raw) >= 2 else raw
        if not _needs_mask(match["key"], bare if bare != "null" else None):
            return match[0]
        variable = f"{stem}_{len(moved)}"
        environ[variable] = bare
        moved.append(bare)
        return f"{match['lead']}${{oc.env:{variable}}}"

    return f"{key}={_SECRET_PAIR.sub(to_reference, value)}", moved
