"""Launcher presets' safety net: a missing Hydra launcher plugin fails in one clear line."""

from __future__ import annotations

import importlib.util

from hydra.experimental.callback import Callback


class RequirePlugin(Callback):
    """A Hydra callback that a launcher preset adds; Hydra builds callbacks before the
    launcher, so the user reads which pip package to install instead of a plugin traceback."""

    def __init__(self, module: str, pip_package: str, launcher: str) -> None:
        if not plugin_installed(module):
            raise ImportError(
                f"hydra/launcher={launcher} needs the {pip_package} plugin: "
                f"pip install {pip_package}"
            )


def plugin_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
