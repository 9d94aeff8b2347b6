"""Build what a job needs from its config: model (with cache and cap), judge, agent, tools,
task and scorers. Each `_target_` node is instantiated by Hydra."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from hydragent.messages import ChatMessage
from hydragent.models import BACKENDS
from hydragent.models.base import Model
from hydragent.runner.cache import CachedModel, ResponseStore, default_cache_path, normalise_mode
from hydragent.runner.wrappers import ModelWrapper
from hydragent.scorers.base import Scorer


class CappedModel(ModelWrapper):
    """Lets at most `limit` calls into the wrapped backend at once (runner.backend_concurrency),
    e.g. one for a local model that cannot batch, while other work still runs in parallel."""

    def __init__(self, inner: Model, limit: int) -> None:
        super().__init__(inner)
        self._slots = threading.BoundedSemaphore(limit)

    def generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> ChatMessage:
        with self._slots:
            return self.inner.generate(messages, *args, **kwargs)


def plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def backend_name(node: DictConfig) -> str:
    """The config option name (`openai`, `transformers`...) of a model node's `_target_`."""
    target = str(node.get("_target_", ""))
    for name, path in BACKENDS.items():
        if path.replace(":", ".") == target or path.split(":")[1] == target.rsplit(".", 1)[-1]:
            return name
    return target.rsplit(".", 1)[-1]


def build_model(
    node: DictConfig,
    cache: DictConfig | None,
    caps: Mapping[str, int] | None,
    seed: int | None = None,
) -> tuple[Model, CachedModel | None]:
    """The model the agent talks to: seeded, capped per backend, then cached; returns the
    cache wrapper too so the runner can report hits and real calls.

    The run's `seed` is part of the cache key even for a backend that cannot take it, so
    that replicates (`seed=0,1`) never replay each other's sampled replies."""
    model: Model = instantiate(node, _convert_="all")
    identity = dict(plain(node))
    if seed is not None:
        if hasattr(model, "apply_seed"):  # a duck-typed model (no Model base) is left as is
            model.apply_seed(int(seed))
        identity.setdefault("seed", int(seed))
    name = backend_name(node)
    limit = (caps or {}).get(name) or (caps or {}).get(type(model).__name__)
    if limit:
        model = CappedModel(model, int(limit))
    mode = normalise_mode(cache.get("mode", "off") if cache is not None else "off")
    if mode == "off":
        return model, None
    path = cache.get("path") if cache is not None else None
    store = ResponseStore(Path(path).expanduser() if path else default_cache_path())
    cached = CachedModel(model, store, mode, identity)
    return cached, cached


def _accepts(target: str, parameter: str) -> bool:
    try:
        signature = inspect.signature(get_class(target))
    except (ValueError, TypeError, ImportError):
        return False
    return parameter in signature.parameters or any(
        p.kind is p.VAR_KEYWORD for p in signature.parameters.values()
    )


def build_agent(node: DictConfig, tools_node: Any) -> Any:
    """The agent, handed ready tools (hydragent.tools.build_tools) when it takes any."""
    target = str(node.get("_target_", ""))
    if "tools" in inspect.signature(get_class(target)).parameters:
        from hydragent.tools import build_tools

        return instantiate(node, tools=build_tools(tools_node), _convert_="all")
    if tools_node:
        raise ValueError(
            f"agent {target.rsplit('.', 1)[-1]} takes no tools, but tools= selects "
            f"{', '.join(map(str, tools_node))}; use agent=tool_calling, agent=code or tools=none"
        )
    return instantiate(node, _convert_="all")


def scorer_nodes(node: Any) -> dict[str, DictConfig]:
    """cfg.scorer: one `_target_` node, or a mapping name -> node (scorer=[exact,includes])."""
    if node is None:
        raise ValueError("no scorer selected: add scorer=exact (or includes, regex, numeric...)")
    if "_target_" in node:
        return {str(node["_target_"]).rsplit(".", 1)[-1]: node}
    return {str(name): child for name, child in node.items() if child is not None}


def build_scorers(node: Any, judge: Model | None) -> list[Scorer]:
    scorers = []
    for child in scorer_nodes(node).values():
        if _accepts(str(child["_target_"]), "judge") and "judge" not in child:
            scorers.append(instantiate(child, judge=judge, _convert_="all"))
        else:
            scorers.append(instantiate(child, _convert_="all"))
    return scorers
