"""`validate` and `run` agree, as a user sees it: each case that once passed validate and then
failed the run (or failed both with a traceback or exit 1) now either runs, or is one config
error line (exit 2) naming the key, in both commands, before anything is written.
The properties behind them are tested with generated inputs in test_properties_config.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import LoopbackServer, openai_app, running
from tests.test_cli import hydragent

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(openai_app) as loopback:
        yield loopback


def both(*args: str, cwd: Path, env: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """(exit code, stderr) of `validate ARGS`, then of `run ARGS`."""
    results = [hydragent(command, *args, cwd=cwd, env=env) for command in ("validate", "run")]
    return [(r.returncode, r.stderr) for r in results]


def assert_refused_alike(results: list[tuple[int, str]], cwd: Path, *named: str) -> None:
    """Exit 2 in both commands, one line naming each of `named`, no traceback, no folder."""
    for code, stderr in results:
        assert code == 2, stderr
        assert "Traceback" not in stderr
        line = stderr.strip().splitlines()[-1]
        assert line.startswith("hydragent: config error: "), stderr
        for word in named:
            assert word in line, (word, line)
    assert not (cwd / "outputs").exists() and not (cwd / "multirun").exists()


def summary_of(stdout: str) -> dict[str, object]:
    folder = Path(stdout.strip().splitlines()[-1].removeprefix("Run folder: "))
    return json.loads((folder / "summary.json").read_text())


def test_an_environment_variable_runs_as_the_type_the_key_declares(tmp_path: Path) -> None:
    args = ("model=scripted", "runner.sample_timeout_s=${oc.env:T}", "runner.progress=${oc.env:P}")
    env = {"T": "30", "P": "false"}
    assert hydragent("validate", *args, cwd=tmp_path, env=env).returncode == 0
    ran = hydragent("run", *args, cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    assert summary_of(ran.stdout)["counts"]["ok"] == 6  # type: ignore[index]


def test_completion_parameters_reach_the_server_typed(
    tmp_path: Path, server: LoopbackServer
) -> None:
    args = (
        "model=openai", f"model.api_base={server.url}/v1", "model.api_key=sk-test",
        "model.timeout='30'", "model.requests_per_minute='600'", "+model.max_tokens=${oc.env:N}",
        "task.limit=2",
    )  # fmt: skip
    assert hydragent("validate", *args, cwd=tmp_path, env={"N": "64"}).returncode == 0
    ran = hydragent("run", *args, cwd=tmp_path, env={"N": "64"})
    assert ran.returncode == 0, ran.stderr
    assert summary_of(ran.stdout)["counts"]["error"] == 0  # type: ignore[index]
    sent = [request.json["max_tokens"] for request in server.requests]
    assert sent == [64, 64], "an integer, not the string '64'"


def test_a_value_that_does_not_fit_is_refused_naming_its_key(tmp_path: Path) -> None:
    results = both("model=openai", "model.requests_per_minute=lots", cwd=tmp_path)
    assert_refused_alike(results, tmp_path, "model.requests_per_minute")


@pytest.mark.parametrize(
    "args",
    [("hydra.run.dir=${oc.env:HYDRAGENT_UNSET_DIR}",),
     ("-m", "seed=0,1", "hydra.sweep.subdir=${oc.env:HYDRAGENT_UNSET_DIR}")],
    ids=["run.dir", "sweep.subdir"],
)  # fmt: skip
def test_a_hydra_key_that_does_not_resolve_is_a_config_error(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    key = args[-1].split("=", 1)[0]
    results = both(*args, "model=scripted", cwd=tmp_path)  # flags first: `-m ...`
    assert_refused_alike(results, tmp_path, key, "HYDRAGENT_UNSET_DIR")


def test_an_output_folder_name_too_long_is_one_line(tmp_path: Path) -> None:
    results = both("model=scripted", f"hydra.run.dir={tmp_path / ('x' * 300)}", cwd=tmp_path)
    assert_refused_alike(results, tmp_path, "hydra.run.dir", "too long")


def test_a_relative_task_path_is_read_from_where_hydragent_started(tmp_path: Path) -> None:
    row = {"id": "a", "input": "What is the capital of France?", "target": "Paris"}
    (tmp_path / "rel.jsonl").write_text(json.dumps(row) + "\n")
    args = ("model=scripted", "task=file", "task.path=rel.jsonl", "hydra.job.chdir=true")
    assert hydragent("validate", *args, cwd=tmp_path).returncode == 0
    ran = hydragent("run", *args, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert summary_of(ran.stdout)["counts"]["ok"] == 1  # type: ignore[index]


def test_a_judge_template_with_an_unknown_placeholder_lists_the_valid_ones(tmp_path: Path) -> None:
    template = "+scorer.model_graded.template='Q {input} R {reference} A {answer}'"
    results = both(
        "model=scripted", "scorer=model_graded", "judge=scripted", template, cwd=tmp_path
    )
    assert_refused_alike(
        results, tmp_path, "scorer.model_graded.template", "{reference}", "{input}, {target}"
    )


def test_a_long_one_line_system_prompt_is_text(tmp_path: Path) -> None:
    prompt = "Answer in one word. " * 15  # 300 characters on one line
    args = ("model=scripted", f"+agent.system_prompt='{prompt}'")
    assert hydragent("validate", *args, cwd=tmp_path).returncode == 0
    ran = hydragent("run", *args, cwd=tmp_path)
    assert ran.returncode == 0 and "File name too long" not in ran.stderr, ran.stderr


def test_an_aws_profile_that_does_not_exist_is_named(tmp_path: Path) -> None:
    pytest.importorskip("boto3")
    env = {"AWS_PROFILE": "hydragent-no-such-profile", "AWS_CONFIG_FILE": str(tmp_path / "c")}
    results = both("model=bedrock", cwd=tmp_path, env=env)
    assert_refused_alike(results, tmp_path, "AWS_PROFILE", "hydragent-no-such-profile")


def test_a_key_with_a_character_no_key_holds_is_named(tmp_path: Path) -> None:
    results = both("model=scripted", "+runner.max_concurrencé=2", cwd=tmp_path)
    assert_refused_alike(results, tmp_path, "runner.max_concurrencé", "'é'")


@pytest.mark.parametrize(
    ("typo", "fix"),
    [("runner.max_concurency=8", "runner.max_concurrency=8"), ("sed=1", "seed=1"),
     ("generation.temprature=1", "generation.temperature=1")],
)  # fmt: skip
def test_a_typo_hint_gives_a_command_that_works(tmp_path: Path, typo: str, fix: str) -> None:
    refused = hydragent("validate", "model=scripted", typo, cwd=tmp_path)
    assert refused.returncode == 2
    assert f"use {fix}" in refused.stderr and f"+{typo}" not in refused.stderr, refused.stderr
    assert hydragent("validate", "model=scripted", fix, cwd=tmp_path).returncode == 0


def test_a_local_inference_server_needs_no_hub(tmp_path: Path, server: LoopbackServer) -> None:
    pytest.importorskip("huggingface_hub")
    args = ("model=inference_client", f"model.base_url={server.url}/v1", "task.limit=2")
    env = {"HF_HUB_OFFLINE": "1"}
    assert hydragent("validate", *args, cwd=tmp_path, env=env).returncode == 0
    ran = hydragent("run", *args, cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    assert summary_of(ran.stdout)["counts"]["error"] == 0  # type: ignore[index]


def test_cost_based_routing_over_local_deployments_answers(tmp_path: Path) -> None:
    pytest.importorskip("litellm")
    with running(openai_app) as first, running(openai_app) as second:
        env = {"LOCAL_SERVER_A": f"{first.url}/v1", "LOCAL_SERVER_B": f"{second.url}/v1"}
        ran = hydragent("run", "recipe=router_compare", "router=cost_based", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr
        assert summary_of(ran.stdout)["counts"]["error"] == 0  # type: ignore[index]
        assert len(first.requests) + len(second.requests) == 6


def test_a_folder_holding_another_configs_results_is_refused_by_validate_too(
    tmp_path: Path,
) -> None:
    first = hydragent("run", "model=scripted", "seed=0", "hydra.run.dir=D", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "D" / "samples.jsonl").read_bytes()
    results = both("model=scripted", "seed=5", "hydra.run.dir=D", cwd=tmp_path)
    for code, stderr in results:
        assert code == 2, stderr
        line = stderr.strip().splitlines()[-1]
        assert "already holds 6 results of another config" in line, line
        assert "was seed=0; now seed=5" in line and "runner.resume=new_config" in line, line
    assert (tmp_path / "D" / "samples.jsonl").read_bytes() == before
    same = hydragent("validate", "model=scripted", "seed=0", "hydra.run.dir=D", cwd=tmp_path)
    assert same.returncode == 0, same.stderr  # the same config resumes: validate agrees


def test_a_sweep_refuses_a_conflicting_job_before_any_job_writes(tmp_path: Path) -> None:
    sweep = ("-m", "model=scripted", "hydra.sweep.dir=S")
    first = hydragent("run", *sweep, "seed=0,1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "S").rglob("*") if p.is_file()}
    for code, stderr in both(*sweep, "seed=0,2", cwd=tmp_path):
        assert code == 2, stderr
        line = stderr.strip().splitlines()[-1]
        assert line.startswith("hydragent: config error: job 1 (model=scripted seed=2)"), line
        assert "S/1 already holds 6 results" in line and "hydra.sweep.dir" in line, line
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "S").rglob("*") if p.is_file()}
    assert after == written, "job 0 ran again before job 1 was refused"


def test_two_sweep_jobs_sharing_one_folder_is_a_config_error(tmp_path: Path) -> None:
    args = ("-m", "model=scripted", "seed=0,1", "hydra.sweep.dir=S", "hydra.sweep.subdir=same")
    for code, stderr in both(*args, cwd=tmp_path):
        assert code == 2, stderr
        line = stderr.strip().splitlines()[-1]
        assert "hydra.sweep.subdir=same: jobs 0, 1 resolve to one folder" in line, line
        assert "${hydra.job.num}" in line, line
    assert not (tmp_path / "S").exists()


@pytest.mark.parametrize(
    ("override", "env"),
    [('hydra.run.dir="lit\\${x}"', {}), ("hydra.run.dir=${oc.env:RD}", {"RD": "e${x}"})],
    ids=["escaped", "from-env"],
)
def test_a_run_folder_holding_a_literal_interpolation_is_a_config_error(
    tmp_path: Path, override: str, env: dict[str, str]
) -> None:
    results = both("model=scripted", override, cwd=tmp_path, env=env)
    assert_refused_alike(results, tmp_path, "hydra.run.dir", "'${'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "seed", ["seed=99999999999999999999", "seed=-1", "generation.seed=4294967296"]
)
def test_a_seed_out_of_range_is_refused_naming_the_range(tmp_path: Path, seed: str) -> None:
    results = both("model=scripted", seed, cwd=tmp_path)
    assert_refused_alike(results, tmp_path, seed, "0 <= seed < 2**32")


def test_the_largest_seed_runs(tmp_path: Path) -> None:
    ran = hydragent("run", "model=scripted", "seed=4294967295", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert summary_of(ran.stdout)["counts"]["ok"] == 6  # type: ignore[index]


@pytest.mark.parametrize("args", [("hydra.run.dir=''",), ("-m", "hydra.sweep.dir=''")])
def test_an_empty_output_folder_is_a_config_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    results = both(*args, "model=scripted", cwd=tmp_path)
    assert_refused_alike(results, tmp_path, args[-1].split("=")[0], "empty folder name")
    assert list(tmp_path.iterdir()) == [], "nothing written into the current folder"


def test_a_cache_file_cut_short_is_refused_naming_the_file(tmp_path: Path) -> None:
    cache = tmp_path / "replies.sqlite"
    made = hydragent("run", "model=scripted", "cache=on", f"cache.path={cache}", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    whole = cache.read_bytes()
    untouched = hydragent(
        "validate", "model=scripted", "cache=replay", f"cache.path={cache}", cwd=tmp_path
    )
    assert untouched.returncode == 0, untouched.stderr
    assert cache.read_bytes() == whole and sorted(tmp_path.glob("replies*")) == [cache]
    cache.write_bytes(whole[: len(whole) // 2])
    for mode in ("on", "replay"):
        shutil.rmtree(tmp_path / "outputs", ignore_errors=True)  # the first run's folder
        results = both("model=scripted", f"cache={mode}", f"cache.path={cache}", cwd=tmp_path)
        assert_refused_alike(results, tmp_path, "cache.path", str(cache), "damaged", f"rm {cache}")


def test_a_dict_given_whole_says_the_forms_that_work_and_they_do(tmp_path: Path) -> None:
    results = both("model=scripted", "runner.backend_concurrency={scripted:2}", cwd=tmp_path)
    assert_refused_alike(
        results, tmp_path, "+runner.backend_concurrency.scripted=2",
        "++runner.backend_concurrency={scripted:2}",
    )  # fmt: skip
    for form in (
        "+runner.backend_concurrency.scripted=2",
        "++runner.backend_concurrency={scripted:2}",
    ):
        ran = hydragent("run", "model=scripted", form, cwd=tmp_path)
        assert ran.returncode == 0, (form, ran.stderr)


def test_a_value_hydras_own_key_refuses_names_the_key_and_its_choices(tmp_path: Path) -> None:
    results = both("model=scripted", "hydra.job.chdir=maybe", cwd=tmp_path)
    assert_refused_alike(results, tmp_path, "hydra.job.chdir=maybe", "valid: true, false")


def test_a_task_path_naming_a_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    results = both("model=scripted", "task=file", f"task.path={tmp_path / 'data'}", cwd=tmp_path)
    assert_refused_alike(results, tmp_path, "task.path", "is a folder, not a file")


def test_report_of_a_file_says_it_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text("{}")
    shown = hydragent("report", "summary.json", cwd=tmp_path)
    assert shown.returncode == 2 and "is a file, not a folder" in shown.stderr, shown.stderr
