"""Config rules for `limits` beyond its schema: the extra must be installed, the store must
answer, and a budget needs a price and an output cap for every model it pays for (the worst
case of a call must be known before it starts)."""

from __future__ import annotations

from typing import Any

from hydragent.cost import given_pricing

_CAPS = ("max_tokens", "max_completion_tokens", "max_new_tokens")
#: the fix for an unpriced model, as it can be typed (with the model's own prices)
PRICING_FIX = "pricing.input_per_mtok=0.5 pricing.output_per_mtok=1.5 (your model's prices)"


def _priced(target: Any, node: dict[str, Any]) -> bool:
    """Whether LiteLLM's cost map prices this remote model (local models have no list price)."""
    from hydragent.cost import price
    from hydragent.models.api import ApiModel

    model_id = node.get("model_id")
    if not (isinstance(target, type) and issubclass(target, ApiModel) and model_id):
        return False
    return price(str(model_id), {"input_tokens": 1, "output_tokens": 1}) is not None


def limits_problems(
    plain: dict[str, Any], located: dict[str, Any], launch_dir: str = "."
) -> list[str]:
    """A limit set without the `limits` extra, or a store it cannot use; then the budget's.
    A relative SQLite path is relative to `launch_dir` (where hydragent was started)."""
    import importlib.util

    limits = plain.get("limits") or {}
    if not isinstance(limits, dict):
        return []
    named = {
        k: limits.get(k)
        for k in ("requests_per_minute", "tokens_per_minute", "max_concurrency", "budget_usd")
    }
    chosen = [f"limits.{k}" for k, v in named.items() if v is not None]
    if not chosen:
        return []
    needs = ["pyrate_limiter"] + ["redis"] * str(limits.get("store", "")).startswith("redis")
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        return [
            f"{chosen[0]}: {', '.join(missing)} is not installed; pip install 'hydragent[limits]'"
        ]
    store = str(limits.get("store") or "auto")
    return (
        store_problems(store, launch_dir)
        + tokens_problems(limits, plain)
        + budget_problems(limits, plain, located)
    )


def tokens_problems(limits: dict[str, Any], plain: dict[str, Any]) -> list[str]:
    """`limits.tokens_per_minute` below one call's output cap: no call could ever fit in a
    minute's allowance (each call weighs its prompt plus its cap), so it is refused here
    rather than found out at run time (the governor refuses a call whose prompt tips it)."""
    limit = limits.get("tokens_per_minute")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return []
    model = plain.get("model") or {}
    generation = plain.get("generation") or {}
    caps = [(f"model.{k}", model.get(k)) for k in _CAPS] + [
        ("generation.max_tokens", generation.get("max_tokens"))
    ]
    key, cap = next(((k, v) for k, v in caps if isinstance(v, int) and v > 0), ("", 0))
    if cap < limit:
        return []
    return [
        f"limits.tokens_per_minute={limit} is not above one call's output cap ({key}={cap}): "
        f"no call would ever fit in a minute; raise limits.tokens_per_minute above {cap} "
        f"(plus the prompt), or lower {key}"
    ]


def store_problems(url: str, launch_dir: str = ".") -> list[str]:
    """A store that cannot serve: a Redis that does not answer, a SQLite path that is a
    folder or another kind of file, or not in a folder. (A malformed URL is the schema's
    problem.)"""
    from hydragent.limits.stores import store_problem

    if store_problem(url) or url == "auto":
        return []
    if url.startswith("sqlite:///"):
        return sqlite_problems(url, launch_dir)
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        return [
            f"limits.store={url!r}: no Redis answers there ({error}); start redis-server "
            "there, or use limits.store=auto (a SQLite file, one machine)"
        ]
    finally:
        client.close()
    return []


def sqlite_problems(url: str, launch_dir: str = ".") -> list[str]:
    """A SQLite path that is a folder or another kind of file, or whose parent is not an
    existing folder (missing, or a file): refused here, so validate and run agree and
    nothing is written (the store's folder is the user's to create, as for a task file)."""
    from pathlib import Path

    from hydragent.limits.stores import sqlite_path

    path = Path(launch_dir, sqlite_path(url))
    forms = (
        "sqlite:///rel/x.sqlite is relative to where hydragent is started, "
        "sqlite:////abs/x.sqlite (four slashes) absolute"
    )
    if path.is_dir():
        return [f"limits.store={url!r}: {path} is a folder; name a file, or use auto"]
    if path.is_file() and _head(path) not in (b"", b"SQLite format 3\x00"):
        return [f"limits.store={url!r}: {path} is not a SQLite file; name another file"]
    parent = path.parent
    if not parent.exists():
        return [
            f"limits.store={url!r}: the folder {parent} does not exist; create it "
            f"(mkdir -p {parent}) or name another file ({forms})"
        ]
    if not parent.is_dir():
        return [
            f"limits.store={url!r}: {parent} is a file, not a folder; name a file in a "
            f"folder ({forms})"
        ]
    return []


def _head(path: Any) -> bytes:
    with path.open("rb") as handle:
        return handle.read(16)


def budget_problems(
    limits: dict[str, Any], plain: dict[str, Any], located: dict[str, Any]
) -> list[str]:
    """`limits.budget_usd` without a known price for the model (or the judge), or without an
    output cap: one line each, naming the node that fixes it."""
    budget = limits.get("budget_usd")
    if not isinstance(budget, int | float) or isinstance(budget, bool):
        return []  # unset, or a wrong type the schema reports
    problems = []
    model = plain.get("model") or {}
    if not given_pricing(plain.get("pricing")) and not _priced(located.get("model"), model):
        problems.append(
            f"limits.budget_usd={budget:g}: no price is known for model "
            f"{model.get('model_id')!r} (LiteLLM's cost map lacks it); set its prices in "
            f"dollars per million tokens: {PRICING_FIX}"
        )
    judge = plain.get("judge")
    if isinstance(judge, dict) and not _priced(located.get("judge"), judge):
        problems.append(
            f"limits.budget_usd={budget:g}: no price is known for the judge "
            f"{judge.get('model_id')!r}, so its spend cannot be bounded; choose a judge in "
            "LiteLLM's cost map, or drop limits.budget_usd"
        )
    generation = plain.get("generation") or {}
    capped = generation.get("max_tokens") or any(model.get(k) for k in _CAPS)
    if not capped:
        problems.append(
            f"limits.budget_usd={budget:g} needs an output cap to bound each call's cost: set "
            "generation.max_tokens"
        )
    return problems
