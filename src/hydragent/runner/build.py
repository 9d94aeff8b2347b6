"""The runner wraps what the assembly built: the request path of the model and of the judge.

`config/assemble.py` hands over the backends as built, unwrapped, with the resolved config;
everything the runner adds around a call is decided here, from that config:

- the model: stop gate, the last reply kept per thread (for an errored sample's record),
  then the response cache (`cache=on|replay`), then the shared limits (`limits`, when set:
  a cache hit costs no request and no dollar), then the cap of `runner.backend_concurrency`
  for its backend (a cache hit takes no slot);
- the judge: stop gate, then a meter (each sample's judge tokens count apart), then the cache,
  then the shared limits.

The cache key holds the node, the generation settings and the seed, so that replicates
(`seed=0,1`) and other sampling settings never replay each other's replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydragent.config.paths import default_cache_path
from hydragent.config.schemas import CacheConfig
from hydragent.runner.cache import ResponseCache, ResponseStore
from hydragent.runner.request_path import Cap, LastReply, Layer, Meter, route, stop_gate


@dataclass
class Routed:
    """The run's model and judge with their request paths, and the parts the summary reads."""

    model: Any
    judge: Any = None
    cache: ResponseCache | None = None
    meter: Meter | None = None
    replies: LastReply = field(default_factory=LastReply)
    stores: list[ResponseStore] = field(default_factory=list)

    def close(self) -> None:
        for store in self.stores:
            store.close()


def _seed(config: dict[str, Any]) -> int | None:
    """The generation node's seed (which follows the top-level `seed`), else `seed`."""
    generation = config.get("generation")
    if isinstance(generation, dict) and generation.get("seed") is not None:
        return int(generation["seed"])
    return int(config["seed"]) if config.get("seed") is not None else None


def _cache(config: dict[str, Any], group: str, model: Any, routed: Routed) -> ResponseCache | None:
    settings = CacheConfig.model_validate(config.get("cache") or {})
    if settings.mode == "off":
        return None
    identity = dict(config[group])
    identity.setdefault("generation", config.get("generation"))
    if _seed(config) is not None:
        identity.setdefault("seed", _seed(config))
    path = Path(settings.path).expanduser() if settings.path else default_cache_path()
    store = ResponseStore(path)
    routed.stores.append(store)
    return ResponseCache(store, settings.mode, identity, str(getattr(model, "model_id", "")))


def route_parts(
    model: Any,
    judge: Any,
    config: dict[str, Any],
    backend: str,
    model_limit: Layer | None = None,
    judge_limit: Layer | None = None,
) -> Routed:
    """Put the request paths around the built model and judge (`config`: resolved;
    `*_limit`: the shared limits' layers, hydragent.limits, when `limits` sets any)."""
    routed = Routed(model=model, judge=judge)
    layers: list[Layer] = [stop_gate, routed.replies]
    routed.cache = _cache(config, "model", model, routed)
    if routed.cache is not None:
        layers.append(routed.cache)
    if model_limit is not None:
        layers.append(model_limit)
    limits = (config.get("runner") or {}).get("backend_concurrency") or {}
    limit = limits.get(backend) or limits.get(type(model).__name__)
    if limit:
        layers.append(Cap(int(limit)))
    route(model, layers)
    if judge is not None:
        routed.meter = Meter()
        judge_layers: list[Layer] = [stop_gate, routed.meter]
        judge_cache = _cache(config, "judge", judge, routed)
        if judge_cache is not None:
            judge_layers.append(judge_cache)
        if judge_limit is not None:
            judge_layers.append(judge_limit)
        route(judge, judge_layers)
    return routed
