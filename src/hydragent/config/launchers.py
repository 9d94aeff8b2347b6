"""Launcher presets (`hydra/launcher=`) that come from optional Hydra plugins.

hydragent keeps no YAML for them: a config file with a plugin's name shadows the plugin's own
schema, and with the plugin installed the two fail to merge. A missing plugin would leave
Hydra's "could not find" message, so the CLI checks first and names the package to install.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

_JOBLIB = ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "launchers")
_SUBMITIT = ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "launchers")
#: preset name -> (the plugin's module, its pip package, the hydragent extra that has it)
LAUNCHER_PLUGINS: dict[str, tuple[str, str, str]] = {
    "joblib": _JOBLIB,
    "submitit_local": _SUBMITIT,
    "submitit_slurm": _SUBMITIT,
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
}


def plugin_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def missing_launcher_plugin(overrides: Iterable[str]) -> str | None:
    """The one-line error for a `hydra/launcher=NAME` override whose plugin is missing."""
    for override in overrides:
        key, _, name = override.partition("=")
        if key.lstrip("+") != "hydra/launcher" or name not in LAUNCHER_PLUGINS:
            continue
        module, package, extra = LAUNCHER_PLUGINS[name]
        if not plugin_installed(module):
            return (
                f"hydra/launcher={name} needs the {package} plugin: pip install {package} "
                f"(or pip install 'hydragent[{extra}]')"
            )
    return None
