"""Serves a hydragent checkout's top-level `recipes/` folder as the config group `recipe`.

conf/config.yaml lists `hydragent-recipes://` in `hydra.searchpath`. In a wheel the recipes are
packaged as `hydragent/conf/recipe` and this source is empty. It locates hydragent with
`find_spec`, so Hydra's plugin scan (which imports this module for every Hydra app) stays cheap.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from omegaconf import OmegaConf

GROUP = "recipe"


def _checkout_recipes_dir() -> Path | None:
    spec = importlib.util.find_spec("hydragent")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations))).resolve()
    if (package / "conf" / GROUP).is_dir():  # a wheel: the main config folder has them
        return None
    recipes = package.parent.parent / "recipes"
    return recipes if recipes.is_dir() else None


class HydragentRecipesConfigSource(ConfigSource):
    """A read-only config source whose only group is `recipe`; `hydragent-recipes://DIR`
    serves DIR instead of the checkout's `recipes/`."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        self.folder = Path(self.path) if self.path else _checkout_recipes_dir()

    @staticmethod
    def scheme() -> str:
        return "hydragent-recipes"

    def _file(self, config_path: str) -> Path | None:
        group, _, name = config_path.strip("/").partition("/")
        if self.folder is None or group != GROUP or not name or "/" in name:
            return None
        return self.folder / self._normalize_file_name(name)

    def load_config(self, config_path: str) -> ConfigResult:
        path = self._file(config_path)
        if path is None or not path.is_file():
            raise ConfigLoadError(f"Config not found : {config_path}")
        text = path.read_text(encoding="utf-8")
        return ConfigResult(
            config=OmegaConf.create(OmegaConf.load(path)),
            path=f"{self.scheme()}://{self.folder}",
            provider=self.provider,
            header=ConfigSource._get_header_dict(text[:512]),
        )

    def available(self) -> bool:
        return True  # an empty source in a wheel, rather than a warning on every run

    def is_group(self, config_path: str) -> bool:
        groups = ("", GROUP) if self.folder is not None else ("",)
        return config_path.strip("/") in groups

    def is_config(self, config_path: str) -> bool:
        path = self._file(config_path)
        return path is not None and path.is_file()

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if self.folder is None:
            return []
        if config_path.strip("/") == "":
            wants_groups = results_filter in (None, ObjectType.GROUP)
            return [GROUP] if wants_groups else []
        if config_path.strip("/") != GROUP or results_filter == ObjectType.GROUP:
            return []
        return sorted(
            name[: -len(".yaml")] for name in os.listdir(self.folder) if name.endswith(".yaml")
        )
