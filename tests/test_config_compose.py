"""Every option of every config group, and every recipe, composes and validates.

Options are discovered from disk (conf/<group>/**.yaml and recipes/*.yaml), never listed by
hand, so a new option is tested the moment its file lands.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hydragent.config import ConfigError, compose, conf_dir, recipes_dir, validate_config
from hydragent.messages import MessageRole

REPO = Path(__file__).resolve().parent.parent
CONF = conf_dir()
HEAVY = ("torch", "transformers", "litellm", "boto3", "openai", "vllm", "mlx")
SKIPPED_GROUPS = {"local"}  # git-ignored and optional: a user's own endpoints and keys

# Options that only make sense beside another choice, by group or by `group=option`.
DEPLOYMENTS = (
    "[{model_name: model-group-1, litellm_params: "
    "{model: openai/gpt-4o-mini, api_base: 'http://127.0.0.1:9/v1', api_key: test}}]"
)
COMPANIONS = {
    "grammar": ["model=scripted"],  # ScriptedModel checks every grammar type
    "router": ["model=litellm_router"],
    "judge=litellm_router": [f"judge.model_list={DEPLOYMENTS}"],
    "model=litellm_router": ["router=simple_shuffle"],
    "scorer=model_graded": ["judge=scripted"],
}


def discover_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for path in sorted(CONF.rglob("*.yaml")):
        group = path.parent.relative_to(CONF).as_posix()
        if group != "." and group.split("/")[0] not in SKIPPED_GROUPS:
            groups.setdefault(group, []).append(path.stem)
    return groups


def installed_launchers() -> list[str]:
    """`hydra/launcher` options that Hydra and its installed plugins provide (basic, joblib,
    submitit_*), beyond the presets in conf/hydra/launcher/."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return GlobalHydra.instance().config_loader().get_group_options("hydra/launcher")


GROUPS = discover_groups()
LAUNCHERS = installed_launchers()
GROUP_OPTIONS = [(g, o) for g, options in GROUPS.items() for o in options]
RECIPES = sorted(p.stem for p in recipes_dir().glob("*.yaml")) if recipes_dir() else []
MODELS = GROUPS.get("model", [])


def fill_value(key: str, tmp_path: Path) -> str:
    """A stand-in for a required `???` value, so validation can go on to build the node."""
    if key == "path":
        data = tmp_path / "samples.jsonl"
        data.write_text('{"id": "1", "input": "2 + 2?", "target": "4"}\n')
        return str(data)
    return {"choices": "[yes,no]", "pattern": "'[0-9]+'"}.get(key, "test-value")


def validate_with_fills(overrides: list[str], tmp_path: Path) -> None:
    """Validate; when only required values are missing, fill them and validate again."""
    cfg = compose(overrides)
    try:
        validate_config(cfg)
        return
    except ConfigError as error:
        missing = [re.match(r"(\S+) is required \(\?\?\?\)", p) for p in error.problems]
        if not all(missing):
            skip_if_backend_missing(error)
            raise
    fills = [f"{m[1]}={fill_value(m[1].rsplit('.', 1)[-1], tmp_path)}" for m in missing if m]
    try:
        validate_config(compose(overrides + fills))
    except ConfigError as error:
        skip_if_backend_missing(error)
        raise


def skip_if_backend_missing(error: ConfigError) -> None:
    """A `_target_` whose hydragent module has not landed yet is skipped, with the reason."""
    absent = [
        p for p in error.problems
        if (m := re.search(r"cannot import (hydragent\.[\w.]+)\.\w+", p))
        and importlib.util.find_spec(m[1]) is None
    ]  # fmt: skip
    if absent and len(absent) == len(error.problems):
        pytest.skip(f"backend module not there yet: {'; '.join(absent)}")


def test_groups_are_discovered_from_disk() -> None:
    for group in ("model", "roles", "messages", "grammar", "retry"):
        assert GROUPS.get(group), f"conf/{group}/ has no options"
    assert set(GROUPS["roles"]) >= {"none", "tool_as_user", "system_as_user", "all_to_user"}


@pytest.mark.parametrize(
    ("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS]
)
def test_every_option_of_every_group_composes_and_validates(
    group: str, option: str, tmp_path: Path
) -> None:
    choice = f"{group}={option}"
    overrides = [*COMPANIONS.get(group, []), choice, *COMPANIONS.get(choice, [])]
    cfg = compose(overrides)
    assert cfg.hydra.runtime.choices[group] == option
    if group.startswith("hydra/"):
        return  # Hydra's own nodes are Hydra's to check when the sweep starts
    validate_with_fills(overrides, tmp_path)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes(launcher: str) -> None:
    cfg = compose([f"hydra/launcher={launcher}"])
    assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher
    assert cfg.hydra.launcher._target_


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("roles", GROUPS.get("roles", []))
def test_every_roles_preset_replaces_the_conversions_of_every_model(model: str, roles: str) -> None:
    preset = OmegaConf.load(CONF / "roles" / f"{roles}.yaml").custom_role_conversions
    cfg = compose([f"model={model}", f"roles={roles}"])
    assert OmegaConf.to_container(cfg.model.custom_role_conversions) == OmegaConf.to_container(
        preset
    )


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("messages", GROUPS.get("messages", []))
def test_every_messages_preset_composes_with_every_model(model: str, messages: str) -> None:
    expected = OmegaConf.load(CONF / "messages" / f"{messages}.yaml").flatten_messages_as_text
    cfg = compose([f"model={model}", f"messages={messages}"])
    assert cfg.model.flatten_messages_as_text is expected


@pytest.mark.parametrize("roles", GROUPS.get("roles", []))
def test_role_presets_list_all_five_roles_so_they_replace_a_default_whole(roles: str) -> None:
    preset = OmegaConf.load(CONF / "roles" / f"{roles}.yaml").custom_role_conversions
    assert sorted(preset) == sorted(MessageRole.roles())
    assert set(preset.values()) <= set(MessageRole.roles())


@pytest.mark.skipif(not RECIPES, reason="no recipes/ folder in this checkout yet")
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_and_validates(recipe: str, tmp_path: Path) -> None:
    text = (recipes_dir() / f"{recipe}.yaml").read_text()
    assert text.startswith("# @package _global_"), "recipes override the whole config"
    assert f"recipe={recipe}" in text, "a recipe's comments give the command that runs it"
    cfg = compose([f"recipe={recipe}"])
    assert cfg.hydra.runtime.choices.recipe == recipe
    validate_with_fills([f"recipe={recipe}"], tmp_path)


# --- validation rules ----------------------------------------------------------------------


def problems(overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        validate_config(compose(overrides))
    return error.value.problems


def test_a_config_error_survives_pickling_from_a_sweep_worker() -> None:
    import pickle

    error = ConfigError(["a.b is required (???)", "c is not a parameter of X"])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems and str(copy) == str(error)


def test_a_typo_of_a_parameter_names_the_key_the_class_the_fix_and_the_valid_keys() -> None:
    (problem,) = problems(["model=openai", "model.max_tokenz=5"])
    assert problem.startswith("model.max_tokenz is not a parameter of OpenAIServerModel")
    assert "did you mean max_tokens?" in problem
    assert "valid keys: api_base, api_key" in problem


def test_completion_parameters_and_other_extras_are_forwarded_by_a_model() -> None:
    report = validate_config(
        compose(["model=openai", "model.temperature=0.2", "model.enable_thinking=true"])
    )
    assert report.forwarded == ["model.temperature", "model.enable_thinking"]


def test_wrong_types_are_caught_for_parameters_and_completion_parameters() -> None:
    found = problems(["model=inference_client", "model.timeout=abc", "model.temperature=hot"])
    assert any(p.startswith("model.timeout='abc' does not fit InferenceClientModel") for p in found)
    assert any(p.startswith("model.temperature='hot'") for p in found)


def test_all_problems_are_reported_at_once() -> None:
    found = problems(["model=azure_openai", "model.max_tokenz=1", "retry.attempts=0"])
    assert len(found) >= 3
    assert any("model.model_id is required" in p for p in found)
    assert any("max_tokenz" in p for p in found)
    assert any("retry.attempts" in p for p in found)


def test_an_unknown_key_on_a_target_without_kwargs_is_an_error(tmp_path: Path) -> None:
    found = problems(["model=scripted", "++task.limitt=3"])
    assert any("task.limitt is not a parameter of" in p and "limit" in p for p in found)


def test_a_grammar_the_backend_cannot_enforce_names_the_backends_that_can() -> None:
    (problem,) = problems(["model=openai", "grammar=regex", "grammar.pattern='[0-9]+'"])
    assert "grammar=regex cannot be enforced by OpenAIServerModel" in problem
    assert "backends that can:" in problem and "scripted" in problem


def test_an_unknown_role_in_conversions_lists_the_valid_roles() -> None:
    found = problems(["model=scripted", "++model.custom_role_conversions.system=narrator"])
    assert any("narrator" in p and "tool-response" in p for p in found)


def test_weight_loading_models_are_checked_by_signature_only() -> None:
    report = validate_config(compose(["model=transformers"]))
    assert "model" in report.signature_only and "model" not in report.instantiated


# --- acceptance, as a new user would check it ----------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, "-m", "hydragent.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_bedrock_shows_its_class_and_all_to_user_and_roles_none_changes_them(
    tmp_path: Path,
) -> None:
    shown = cli("run", "--cfg", "job", "model=bedrock", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    model = OmegaConf.create(shown.stdout).model
    assert model._target_ == "hydragent.models.bedrock.AmazonBedrockServerModel"
    assert dict(model.custom_role_conversions) == dict.fromkeys(MessageRole.roles(), "user")

    changed = cli("run", "--cfg", "job", "model=bedrock", "roles=none", cwd=tmp_path)
    conversions = dict(OmegaConf.create(changed.stdout).model.custom_role_conversions)
    assert conversions == {role: role for role in MessageRole.roles()}


def test_validate_with_an_unknown_model_key_exits_2_with_one_line(tmp_path: Path) -> None:
    result = cli("validate", "model=openai", "model.max_tokenz=5", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "max_tokenz" in line and "OpenAIServerModel" in line and "valid keys" in line


def test_importing_hydragent_imports_no_heavy_library(tmp_path: Path) -> None:
    code = f"import hydragent, sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr


# --- the packaged wheel --------------------------------------------------------------------


def test_a_non_editable_wheel_carries_conf_and_recipes_and_works_from_any_folder(
    tmp_path: Path,
) -> None:
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("needs hatchling (the `test` extra) to build the wheel offline")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("hydragent-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hydragent/conf/config.yaml" in names
    assert "hydra_plugins/hydragent_recipes/__init__.py" in names
    assert {f"hydragent/conf/recipe/{r}.yaml" for r in RECIPES} <= names
    assert not any(name.startswith("hydragent/conf/local/") for name in names)

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import sys\n"
        "from hydragent.config import conf_dir\n"
        "from hydragent.cli import main\n"
        "print(conf_dir())\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    outputs = {}
    for command in ("recipes", "run --cfg job model=scripted"):
        result = subprocess.run(
            [sys.executable, "-c", code, *command.split()],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == str(site / "hydragent" / "conf")
        outputs[command] = result.stdout
    assert all(f"recipe={recipe}" in outputs["recipes"] for recipe in RECIPES)
    assert "hydragent.models.scripted.ScriptedModel" in outputs["run --cfg job model=scripted"]
