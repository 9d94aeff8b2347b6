"""The `hydragent` command as a user types it: subcommands, exit codes, and secrets kept safe."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hydragent.config import list_recipes, recipes_dir
from hydragent.config.secrets_guard import mask_text
from hydragent.secrets import is_secret_key

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-test-DO-NOT-LEAK-4242"
HEAVY = ("torch", "transformers", "litellm", "boto3", "openai", "vllm", "mlx")


def hydragent(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script the way a user would, from `cwd`."""
    script = Path(sys.executable).with_name("hydragent")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hydragent.cli"]
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update(env or {})
    return subprocess.run(
        [*command, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=240
    )


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def assert_no_secret(folder: Path, *outputs: str) -> None:
    leaks = [str(p) for p in files_under(folder) if SECRET in p.read_text(errors="replace")]
    assert leaks == [], f"secret written to {leaks}"
    for output in outputs:
        assert SECRET not in output


@pytest.mark.parametrize(
    ("key", "secret"),
    [("api_key", True), ("OPENAI_API_KEY", True), ("token", True), ("hf_token", True),
     ("accessToken", True), ("aws_secret_access_key", True), ("password", True),
     ("max_tokens", False), ("max_new_tokens", False), ("max_tokenz", False),
     ("tokenizer", False), ("tokens_per_minute", False), ("model_id", False)],
)  # fmt: skip
def test_which_keys_count_as_secrets(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_console_text_is_masked_by_key_and_by_known_value() -> None:
    text = (
        "model:\n  api_key: sk-abc\n  token: ${oc.env:HF_TOKEN,null}\n  max_tokens: 5\nx: q-123\n"
    )
    masked = mask_text(text, known_secrets=["q-123"])
    assert masked == (
        "model:\n  api_key: '***'\n  token: ${oc.env:HF_TOKEN,null}\n  max_tokens: 5\nx: ***\n"
    )


def test_no_command_prints_the_usage_and_exits_2(tmp_path: Path) -> None:
    result = hydragent(cwd=tmp_path)
    assert result.returncode == 2
    for command in ("run", "validate", "recipes", "report", "cache"):
        assert command in result.stdout


def test_an_unknown_command_is_one_line_naming_the_valid_ones(tmp_path: Path) -> None:
    result = hydragent("train", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert (
        "'train'" in result.stderr
        and "run, validate, recipes, report, view, cache" in result.stderr
    )


def test_recipes_lists_every_recipe_file_with_its_description(tmp_path: Path) -> None:
    folder = recipes_dir()
    if folder is None or not any(folder.glob("*.yaml")):
        pytest.skip("no recipes/ folder in this checkout yet")
    result = hydragent("recipes", cwd=tmp_path)
    assert result.returncode == 0
    on_disk = sorted(path.stem for path in folder.glob("*.yaml"))
    assert [recipe.name for recipe in list_recipes()] == on_disk
    for recipe in list_recipes():
        assert recipe.description, f"recipes/{recipe.name}.yaml needs a description comment"
        assert f"{recipe.name}  " in result.stdout and recipe.description in result.stdout
        assert f"recipe={recipe.name}" in recipe.command


def test_run_on_the_scripted_backend_writes_results_and_prints_a_table(
    tmp_path: Path, run_dir: Path
) -> None:
    result = hydragent(
        "run", "model=scripted", "task=smoke", "agent=direct", "scorer=exact",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "exact" in result.stdout
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["status"] == "ok" for s in samples)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "exact" in json.dumps(summary)
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == [
        "config.yaml", "hydra.yaml", "overrides.yaml",
    ]  # fmt: skip


def test_a_secret_given_on_the_command_line_reaches_no_file_and_no_output(
    tmp_path: Path, run_dir: Path
) -> None:
    run = hydragent(
        "run", "model=scripted", f"model.api_key={SECRET}", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    shown = hydragent("run", "--cfg", "job", "--resolve", f"model.api_key={SECRET}", cwd=tmp_path)
    assert shown.returncode == 0 and "api_key: '***'" in shown.stdout
    checked = hydragent("validate", "model=openai", f"model.api_key={SECRET}", cwd=tmp_path)
    assert checked.returncode == 0 and "api_key: '***'" in checked.stdout
    assert_no_secret(tmp_path, run.stdout, run.stderr, shown.stdout, checked.stdout)
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def test_a_sweep_keeps_secrets_out_of_multirun_yaml_and_every_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = hydragent(
        "run", "-m", "model=scripted", f"model.api_key={SECRET}", "seed=0,1",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (sweep / "multirun.yaml").is_file()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert_no_secret(tmp_path, result.stdout, result.stderr)


def test_a_literal_key_in_a_local_config_is_masked_in_every_written_file(
    tmp_path: Path, run_dir: Path
) -> None:
    extra = tmp_path / "my_conf"
    (extra / "local").mkdir(parents=True)
    (extra / "local" / "default.yaml").write_text(
        f"# @package _global_\nmodel:\n  api_key: {SECRET}\n"
    )
    result = hydragent(
        "run", "--config-dir", str(extra), "model=scripted", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "api_key: '***'" in config
    shown = hydragent("run", "--config-dir", str(extra), "--cfg", "job", cwd=tmp_path)
    assert "api_key: '***'" in shown.stdout
    assert_no_secret(run_dir, result.stdout, result.stderr, shown.stdout)


def test_optional_local_config_and_extra_config_dirs_are_picked_up(tmp_path: Path) -> None:
    extra = tmp_path / "my_conf"
    (extra / "local").mkdir(parents=True)
    (extra / "model").mkdir()
    (extra / "local" / "default.yaml").write_text("# @package _global_\nseed: 123\n")
    (extra / "model" / "mine.yaml").write_text(
        "_target_: hydragent.models.scripted.ScriptedModel\nresponses: [mine]\n"
    )
    result = hydragent(
        "run", "--config-dir", str(extra), "--cfg", "job", "model=mine", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "seed: 123" in result.stdout and "responses:\n  - mine" in result.stdout


def test_validate_prints_the_resolved_config_and_leaves_no_folder_behind(tmp_path: Path) -> None:
    result = hydragent("validate", "model=scripted", "model.temperature=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "_target_: hydragent.models.scripted.ScriptedModel" in result.stdout
    assert "retry:\n  attempts: 4" in result.stdout, "interpolations are resolved"
    assert "config OK" in result.stdout and "model.temperature" in result.stdout
    assert "backend scripted" in result.stdout and "6 samples" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_validate_names_the_sandbox_that_model_written_code_will_run_in(tmp_path: Path) -> None:
    from hydragent.sandbox import SandboxUnavailable, resolve

    result = hydragent("validate", "model=scripted", "agent=code", cwd=tmp_path)
    try:
        expected = resolve({"kind": "auto"}).name
    except SandboxUnavailable as unavailable:  # auto fails closed, naming what is missing
        assert result.returncode == 2 and str(unavailable) in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert f"sandbox: {expected}" in result.stdout.splitlines()[-1]


def test_a_config_error_is_one_line_and_exit_2_and_hydra_full_error_shows_the_traceback(
    tmp_path: Path,
) -> None:
    result = hydragent("run", "model=nonexistent_backend", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "model/nonexistent_backend" in result.stderr and "openai" in result.stderr
    full = hydragent(
        "run", "model=nonexistent_backend", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"}
    )
    assert full.returncode == 2 and "Traceback" in full.stderr


def test_a_missing_task_file_is_a_config_error_before_anything_is_written(
    tmp_path: Path, run_dir: Path
) -> None:
    result = hydragent(
        "run", "model=scripted", "task=file", f"task.path={tmp_path / 'missing.jsonl'}",
        f"hydra.run.dir={run_dir / 'job'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing.jsonl" in result.stderr
    assert not (run_dir / "job").exists()


def test_a_runtime_failure_exits_1_with_its_cause(tmp_path: Path, run_dir: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on: the server is down
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = hydragent(
        "run", "model=openai", f"model.api_base=http://127.0.0.1:{port}/v1", "retry=none",
        "task.limit=1", f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "model.api_base" in result.stderr, "the fix names the key to check"


def test_hydra_flags_work_on_run(tmp_path: Path) -> None:
    helped = hydragent("run", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "== Config ==" in helped.stdout
    info = hydragent("run", "--info", "defaults", "model=openai", cwd=tmp_path)
    assert info.returncode == 0 and "model/openai" in info.stdout
    hydra_cfg = hydragent("run", "--cfg", "hydra", cwd=tmp_path)
    assert hydra_cfg.returncode == 0 and "output_subdir: null" in hydra_cfg.stdout


def test_report_and_cache_subcommands(tmp_path: Path, run_dir: Path) -> None:
    run = hydragent("run", "model=scripted", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = hydragent("report", str(run_dir), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (run_dir / "report.html").is_file()
    missing = hydragent("report", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    stats = hydragent("cache", "stats", str(tmp_path / "cache"), cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    wrong = hydragent("cache", "purge", cwd=tmp_path)
    assert wrong.returncode == 2 and "stats|clear" in wrong.stderr


def test_showing_an_api_backend_config_imports_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from hydragent.cli import main\n"
        "code = main(['run', '--cfg', 'job', 'model=openai'])\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules], code, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.stderr.strip().splitlines()[-1] == "[] 0"
    assert "hydragent.models.openai.OpenAIServerModel" in result.stdout


def test_validate_calls_the_process_sandbox_unsafe(tmp_path: Path) -> None:
    result = hydragent("validate", "model=scripted", "agent=code", "sandbox=process", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sandbox: process (UNSAFE" in result.stdout.splitlines()[-1]
