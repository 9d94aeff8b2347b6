"""Where hydragent's configs live, whether it is installed from a wheel or run from a checkout.

A wheel ships `conf/` as `hydragent/conf` and `recipes/` as `hydragent/conf/recipe`. A checkout
(editable install) has `conf/` and `recipes/` at the repository root; there the `recipe` group
is served from `recipes/` by the `hydragent-recipes://` config source (see hydra_plugins).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PACKAGE_DIR.parent.parent


def conf_dir() -> Path:
    """The primary config folder: the packaged copy first, else the checkout's `conf/`."""
    for candidate in (PACKAGE_DIR / "conf", REPO_DIR / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"hydragent's conf/ folder was not found in {PACKAGE_DIR} or {REPO_DIR}; "
        "reinstall with `pip install .` from the repository"
    )


def checkout_recipes_dir() -> Path | None:
    """The checkout's `recipes/`, when the primary config folder has no `recipe/` of its own."""
    if (PACKAGE_DIR / "conf" / "recipe").is_dir():
        return None
    candidate = REPO_DIR / "recipes"
    return candidate if candidate.is_dir() else None


def recipes_dir() -> Path | None:
    """Where the `recipe` group's files are, in either layout."""
    packaged = PACKAGE_DIR / "conf" / "recipe"
    return packaged if packaged.is_dir() else checkout_recipes_dir()


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    command: str


def _comment_lines(path: Path) -> list[str]:
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        lines.append(stripped.lstrip("#").strip())
    return lines


def read_recipe(path: Path) -> Recipe:
    """A recipe's description (its first comment line that is neither a header nor the
    command) and the command that runs it (a comment line holding `hydragent run`)."""
    name = path.stem
    comments = [c for c in _comment_lines(path) if c and not c.startswith("@package")]
    command = next((c for c in comments if "hydragent " in c), "")
    if command:
        command = command[command.index("hydragent ") :]
    description = next((c for c in comments if "hydragent " not in c), "")
    return Recipe(name, description, command or f"hydragent run recipe={name}")


def list_recipes() -> list[Recipe]:
    """Every recipe on disk, sorted by name: no hand-kept registry."""
    folder = recipes_dir()
    if folder is None:
        return []
    return [read_recipe(path) for path in sorted(folder.glob("*.yaml"))]


def default_cache_path() -> Path:
    """The response cache's file: HYDRAGENT_CACHE_DIR, else $XDG_CACHE_HOME/hydragent, else
    ~/.cache/hydragent. Here, not in the runner, so that validate's cache check and the runner
    agree without config/ importing the runner."""
    import os

    folder = os.environ.get("HYDRAGENT_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder = str(Path(base) / "hydragent")
    return Path(folder).expanduser() / "responses.sqlite"
