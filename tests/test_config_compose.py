"""Every option of every config group, and every recipe, composes and dry-assembles.

Options are discovered from disk (conf/<group>/**.yaml and recipes/*.yaml), never listed by
hand, so a new option is tested the moment its file lands. Each is assembled as `hydragent
validate` does (hydragent.config.assemble, dry run): schemas, signatures, wiring rules, a dry
build of every part and the environment checks, with stand-in credentials.
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

from hydragent.config import ConfigError, compose, conf_dir, recipes_dir
from hydragent.config.assemble import Assembly, assemble
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
    # the scripted replies to json_extraction ({name, year}) fit the schema loosened so
    "grammar=json_schema": [
        "task=json_extraction",
        "grammar.schema.required=[]",
        "grammar.schema.additionalProperties=true",
    ],
    "router": ["model=litellm_router"],
    "chat_template": ["model=transformers"],  # templates fit local backends only
    "retry": ["model=openai"],  # retries fit remote backends only
    "tools": ["agent=tool_calling"],  # agent=direct takes no tools
    "judge=litellm_router": [f"judge.model_list={DEPLOYMENTS}"],
    "model=litellm_router": ["router=simple_shuffle"],
    "scorer": ["model=scripted"],
    "scorer=model_graded": ["judge=scripted"],
    "scorer=code_exec": ["task=humaneval", "task.limit=2"],  # it needs samples with tests
    "scorer=numeric": ["task=arithmetic"],  # it needs numeric targets
}


def recorded_replies(tmp_path: Path) -> list[str]:
    """cache=replay needs a file of recorded replies."""
    from hydragent.runner.cache import ResponseStore

    ResponseStore(tmp_path / "responses.sqlite").close()
    return [f"cache.path={tmp_path / 'responses.sqlite'}"]


def local_dataset(tmp_path: Path) -> list[str]:
    """task=hf_dataset reads local files through a `datasets` builder."""
    return ["task.path=json", f"task.data_files={fill_value('path', tmp_path)}"]


# Options that need a file of their own, by `group=option`.
FILES = {"cache=replay": recorded_replies, "task=hf_dataset": local_dataset}

# Stand-in credentials, so that the environment checks pass wherever the suite runs.
CREDENTIALS = {
    "OPENAI_API_KEY": "test",
    "HF_TOKEN": "test",
    "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9",
    "AZURE_OPENAI_API_KEY": "test",
    "OPENAI_API_VERSION": "2024-06-01",
    "AZURE_API_KEY": "test",
    "AZURE_API_VERSION": "2024-06-01",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",  # what boto3 reads
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


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
    """A stand-in for a required `???` value, so assembly can go on to build the node."""
    if key == "path":
        data = tmp_path / "samples.jsonl"
        data.write_text('{"id": "1", "input": "2 + 2?", "target": "4"}\n')
        return str(data)
    return {"choices": "[Paris,blue]", "pattern": "'[0-9]+'", "model_id": "org/model"}.get(
        key, "test-value"
    )


def assemble_with_fills(overrides: list[str], tmp_path: Path) -> Assembly:
    """Dry-assemble; when only required values are missing, fill them and assemble again."""
    try:
        return assemble(compose(overrides), dry_run=True)
    except ConfigError as error:
        missing = [re.match(r"(\S+) is required \(\?\?\?\)", p) for p in error.problems]
        if not all(missing):
            skip_if_extra_missing(error)
            raise
    fills = [f"{m[1]}={fill_value(m[1].rsplit('.', 1)[-1], tmp_path)}" for m in missing if m]
    try:
        return assemble(compose(overrides + fills), dry_run=True)
    except ConfigError as error:
        skip_if_extra_missing(error)
        raise


def skip_if_extra_missing(error: ConfigError) -> None:
    """A backend whose extra cannot be installed here (vllm needs CUDA) is skipped, with the
    problem as the reason; the message itself is what `validate` tells a user."""
    extras = [p for p in error.problems if "pip install 'hydragent[" in p]
    if extras and len(extras) == len(error.problems):
        pytest.skip("; ".join(extras))


def test_groups_are_discovered_from_disk() -> None:
    for group in ("model", "roles", "messages", "grammar", "retry"):
        assert GROUPS.get(group), f"conf/{group}/ has no options"
    assert set(GROUPS["roles"]) >= {"none", "tool_as_user", "system_as_user", "all_to_user"}


@pytest.mark.parametrize(
    ("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS]
)
def test_every_option_of_every_group_composes_and_dry_assembles(
    group: str, option: str, tmp_path: Path, credentials: None
) -> None:
    choice = f"{group}={option}"
    overrides = [*COMPANIONS.get(group, []), choice, *COMPANIONS.get(choice, [])]
    if choice in FILES:
        overrides += FILES[choice](tmp_path)
    cfg = compose(overrides)
    assert cfg.hydra.runtime.choices[group] == option
    if group.startswith("hydra/"):
        return  # Hydra's own nodes are Hydra's to check when the sweep starts
    assembly = assemble_with_fills(overrides, tmp_path)
    assert assembly.model is not None and assembly.agent is not None
    assert assembly.samples and assembly.scorers


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
def test_every_recipe_composes_and_dry_assembles(
    recipe: str, tmp_path: Path, credentials: None
) -> None:
    text = (recipes_dir() / f"{recipe}.yaml").read_text()
    assert text.startswith("# @package _global_"), "recipes override the whole config"
    assert f"recipe={recipe}" in text, "a recipe's comments give the command that runs it"
    cfg = compose([f"recipe={recipe}"])
    assert cfg.hydra.runtime.choices.recipe == recipe
    assert assemble_with_fills([f"recipe={recipe}"], tmp_path).samples


# --- rules, as a user meets them ----------------------------------------------------------


def problems(overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        assemble(compose(overrides), dry_run=True)
    return error.value.problems


def test_a_config_error_survives_pickling_from_a_sweep_worker() -> None:
    import pickle

    error = ConfigError(["a.b is required (???)", "c is not a parameter of X"])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems and str(copy) == str(error)


def test_a_typo_of_a_parameter_names_the_key_the_class_the_fix_and_the_valid_keys(
    credentials: None,
) -> None:
    (problem,) = problems(["model=openai", "model.max_tokenz=5"])
    assert problem.startswith("model.max_tokenz is not a parameter of OpenAIServerModel")
    assert "did you mean max_tokens?" in problem
    assert "valid keys: api_base, api_key" in problem


def test_completion_parameters_and_other_extras_are_forwarded_by_a_model(
    credentials: None,
) -> None:
    assembly = assemble(
        compose(["model=openai", "model.temperature=0.2", "model.enable_thinking=true"]),
        dry_run=True,
    )
    assert assembly.forwarded == ["model.temperature", "model.enable_thinking"]


def test_wrong_types_are_caught_for_parameters_and_completion_parameters() -> None:
    found = problems(["model=inference_client", "model.timeout=abc", "model.temperature=hot"])
    assert any(p.startswith("model.timeout='abc' does not fit InferenceClientModel") for p in found)
    assert any(p.startswith("model.temperature='hot'") for p in found)


def test_all_problems_are_reported_at_once() -> None:
    found = problems(["model=azure_openai", "model.max_tokenz=1", "retry.attempts=0"])
    assert len(found) >= 3
    assert any("model.model_id is required" in p for p in found)
    assert any("max_tokenz" in p for p in found)
    assert any(p.startswith("retry.attempts=0: Input should be greater than") for p in found)


def test_unknown_keys_anywhere_name_the_nearest_key_and_the_valid_ones() -> None:
    found = problems(
        ["model=scripted", "+runner.max_concurency=4", "+grammer=json_object", "++task.limitt=3"]
    )
    assert any(
        p.startswith("runner.max_concurency is not a key of runner (did you mean max_concurrency?)")
        and "valid keys: attempts, backend_concurrency" in p
        for p in found
    )
    assert any(
        p.startswith("grammer is not a key of the config (did you mean grammar?)") for p in found
    )
    assert any("task.limitt is not a parameter of BuiltinTask" in p and "limit" in p for p in found)


RANGES = [
    ("runner.max_concurrency=abc", "'abc': Input should be a valid integer"),
    ("runner.max_concurrency=0", "0: Input should be greater than or equal to 1"),
    ("runner.sample_timeout_s=-5", "-5: Input should be greater than 0"),
    ("runner.max_error_rate=1.5", "1.5: Input should be less than or equal to 1"),
    ("runner.resume=maybe", "'maybe': valid: auto"),
    ("task.limit=0", "0: Input should be greater than or equal to 1"),
    ("cache.mode=sometimes", "'sometimes': valid: on, off, replay"),
    ("generation.temperature=5", "5: Input should be less than or equal to 2"),
    ("seed=abc", "'abc': Input should be a valid integer"),  # not again as generation.seed
]


@pytest.mark.parametrize(("override", "says"), RANGES)
def test_types_and_ranges_are_checked_with_the_key_and_the_value(override: str, says: str) -> None:
    (problem,) = problems(["model=scripted", override])
    assert problem.startswith(f"{override.split('=')[0]}={says}"), problem


def test_an_invalid_json_schema_is_a_config_error_not_an_error_per_sample() -> None:
    (problem,) = problems(["model=scripted", "grammar=json_schema", "grammar.schema.type=objekt"])
    assert problem.startswith("grammar.schema: not a valid JSON schema at type: 'objekt'")


def test_a_grammar_the_backend_cannot_enforce_names_the_backends_that_can(
    credentials: None,
) -> None:
    (problem,) = problems(["model=openai", "grammar=regex", "grammar.pattern='[0-9]+'"])
    assert "grammar=regex cannot be enforced by OpenAIServerModel" in problem
    assert "backends that can:" in problem and "scripted" in problem


def test_an_unknown_role_in_conversions_lists_the_valid_roles() -> None:
    found = problems(["model=scripted", "++model.custom_role_conversions.system=narrator"])
    assert any("narrator" in p and "tool-response" in p for p in found)


WIRING = [
    ("model=openai router=least_busy", "router=least_busy does not apply to model=openai"),
    ("model=openai chat_template=gemma", "chat_template=gemma does not apply to model=openai"),
    ("model=scripted retry=none", "retry=none does not apply to model=scripted"),
    ("model=scripted tools=calculator", "tools=calculator needs an agent that calls tools"),
    ("model=scripted scorer=model_graded", "scorer.model_graded grades with a judge model"),
    ("model=scripted scorer=code_exec", "scorer.code_exec cannot score task smoke: 6 of 6"),
    ("model=scripted task=json_extraction scorer=numeric", "scorer.numeric cannot score"),
    ("model=litellm_router", "model.model_list is empty: choose router=simple_shuffle"),
]


@pytest.mark.parametrize(("overrides", "says"), WIRING)
def test_wiring_rules_name_the_choice_and_what_fits(
    overrides: str, says: str, credentials: None
) -> None:
    (problem,) = problems(overrides.split())
    assert problem.startswith(says), problem


def test_a_retry_policy_fits_when_the_judge_is_remote(credentials: None) -> None:
    overrides = ["model=scripted", "retry=none", "scorer=model_graded", "judge=openai"]
    assert assemble(compose(overrides), dry_run=True).judge is not None


def test_missing_credentials_name_the_variable_unless_the_endpoint_is_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (problem,) = problems(["model=openai"])
    assert problem.startswith("model.api_key:") and "OPENAI_API_KEY" in problem
    local = ["model=openai", "model.api_base=http://127.0.0.1:8000/v1"]
    assert assemble(compose(local), dry_run=True).backend == "openai"


def test_a_dry_assembly_of_the_local_backend_loads_no_weights(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from hydragent.config import compose\n"
        "from hydragent.config.assemble import assemble\n"
        "a = assemble(compose(['model=transformers']), dry_run=True)\n"
        "print(a.backend, 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["transformers", "False"], result.stderr


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


def test_every_code_running_part_gets_the_one_resolved_sandbox() -> None:
    overrides = ["model=scripted", "agent=code", "tools=python", "task=humaneval", "task.limit=1"]
    try:
        assembly = assemble(compose([*overrides, "scorer=code_exec"]), dry_run=True)
    except ConfigError as error:
        if any("sandbox" in p for p in error.problems):
            pytest.skip(f"no isolation here: {error}")
        raise
    assert type(assembly.sandbox).__name__ == "SandboxSpec"
    assert assembly.agent.sandbox is assembly.sandbox
    (python,) = assembly.tools
    assert python.sandbox is assembly.sandbox
    (scorer,) = assembly.scorers
    assert scorer.sandbox is assembly.sandbox


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/v1", True), ("http://localhost:8080", True),
        ("http://[::1]:8000/v1", True), ("http://10.0.0.7/v1", True),
        ("http://192.168.1.5:8000/v1", True), ("http://gpu-box.local:8000", True),
        ("https://api.openai.com/v1", False), ("https://8.8.8.8/v1", False),
        ("https://my-server.example.com/v1", False),
    ],
)  # fmt: skip
def test_which_endpoints_count_as_local_servers_that_need_no_key(url: str, local: bool) -> None:
    from hydragent.config.endpoints import is_local_endpoint

    assert is_local_endpoint(url) is local


def test_a_remote_endpoint_without_a_key_names_the_variable_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (problem,) = problems(["model=inference_client", "model.base_url=https://tgi.example.com"])
    assert problem.startswith("model.token: https://tgi.example.com is not a local server")
    assert "set HF_TOKEN or model.token" in problem
    private = ["model=inference_client", "model.base_url=http://10.1.2.3:8080"]
    assert assemble(compose(private), dry_run=True).backend == "inference_client"


def test_a_few_shot_example_without_its_output_is_caught_before_any_sample() -> None:
    (problem,) = problems(["model=scripted", "+agent.few_shot=[{input: a, outptu: b}]"])
    assert problem == "agent.few_shot[0].output is required (it has input, outptu)"


def test_a_prompt_template_naming_a_field_the_samples_lack_is_caught_before_any_sample() -> None:
    (problem,) = problems(["model=scripted", "agent.prompt_template='Q: {question}'"])
    assert problem.startswith("agent.prompt_template uses {question}, which sample")
    assert problem.endswith("its fields: id, input, target")
    fits = ["model=scripted", "agent.prompt_template='Q: {input} ({id})'"]
    assert assemble(compose(fits), dry_run=True).agent.prompt_template == "Q: {input} ({id})"
