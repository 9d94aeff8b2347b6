"""Config composition, assembly (config/assemble.py) and secret handling for the CLI, tests
and notebooks."""

from __future__ import annotations

from typing import Any

from hydragent.config.paths import conf_dir, list_recipes, recipes_dir
from hydragent.config.problems import ConfigError

__all__ = [
    "FREE_FORM_NODES",
    "ConfigError",
    "compose",
    "conf_dir",
    "list_recipes",
    "prepare_overrides",
    "recipes_dir",
]

# Model nodes forward extra keys to every completion call, so `model.temperature=0` needs no
# `+`: these overrides become `++` (add or set). Typos are still caught by validation.
FREE_FORM_NODES = ("model", "judge")


def prepare_overrides(overrides: list[str]) -> list[str]:
    """Let `model.KEY=VALUE` add a key the backend's yaml does not list."""
    prepared = []
    for override in overrides:
        key, sep, _ = override.partition("=")
        if (
            sep
            and not key.startswith(("+", "~", "-"))
            and key.split(".", 1)[0] in (FREE_FORM_NODES)
            and "." in key
            and "@" not in key
        ):
            override = "++" + override
        prepared.append(override)
    return prepared


def compose(overrides: list[str] | None = None, config_name: str = "config") -> Any:
    """Compose hydragent's config as `hydragent run` would, outside a Hydra app.

    The returned config keeps its `hydra` node. Hydra's global state is left as it was found
    (cleared), so code that asks `HydraConfig` whether it runs inside a Hydra app is not misled.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3", job_name="hydragent"):
        return hydra_compose(
            config_name, prepare_overrides(list(overrides or [])), return_hydra_config=True
        )
