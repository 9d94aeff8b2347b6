"""What `validate` accepts, `run` runs: one assembly path, tried as a user would.

Each config below goes through `hydragent validate` and then `hydragent run` (the CLI's own
entry point, in this process). Their verdicts must agree: a config validate rejects, run
rejects with the same line (exit 2) before anything is on disk; a config validate accepts
runs every sample without a config failure. Remote backends talk to a loopback server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.servers import LoopbackServer, openai_app, running

from hydragent.cli import main
from hydragent.models import ChatMessage, Model, TokenUsage

GOOD = [
    ("scripted", "model=scripted"),
    ("tools", "model=scripted agent=tool_calling tools=calculator task=arithmetic scorer=numeric"),
    (
        "judge",
        "model=scripted scorer=[exact,model_graded] judge=scripted ~judge.match "
        "judge.responses=[CORRECT]",
    ),
    ("json", "model=scripted task=json_extraction grammar=json_object scorer=json"),
    ("limits", "model=scripted runner.max_concurrency=1 runner.sample_timeout_s=5 task.limit=2"),
    ("helpers", "model=scripted roles=tool_as_user messages=flat"),
    ("generation", "model=scripted generation.max_tokens=8 generation.temperature=0"),
    ("loopback", "model=openai model.api_base={server} task.limit=2"),
    ("remote retry", "model=openai model.api_base={server} retry=none task.limit=2"),
    ("task file", "model=scripted task=file task.path={tmp}/good.jsonl"),
    (
        "a user tool",
        "model=scripted agent=tool_calling +tools.add._target_=tests.test_assemble.add",
    ),
    ("a user model", "~model +model._target_=tests.test_assemble.FiveModel task.limit=2"),
    ("scripted judge as shipped", "model=scripted scorer=model_graded judge=scripted"),
    (
        "a reasoning model through litellm, with a temperature it would refuse (not sent)",
        "model=litellm model.model_id=openai/o3 model.api_base={server} model.api_key=EMPTY "
        "generation.temperature=0.5 task.limit=2",
    ),
    (
        "litellm on a keyless local server",
        "model=litellm model.model_id=openai/x model.api_base={server} model.api_key=EMPTY "
        "task.limit=2",
    ),
]

BAD = [
    ("not a number", "runner.max_concurrency=abc", "runner.max_concurrency='abc'"),
    ("below range", "runner.max_concurrency=-1", "greater than or equal to 1"),
    ("negative deadline", "runner.sample_timeout_s=-5", "runner.sample_timeout_s=-5"),
    ("typo added with +", "+runner.max_concurency=4", "did you mean max_concurrency?"),
    ("top-level typo", "+grammer=json_object", "grammer is not a key of the config"),
    ("no samples", "task.limit=0", "task.limit=0"),
    ("tools without a tool agent", "tools=calculator", "agent=direct takes none"),
    ("no judge", "scorer=model_graded", "no judge is selected"),
    ("router on openai", "model=openai model.api_base={server} router=least_busy", "router fits"),
    ("template on openai", "model=openai model.api_base={server} chat_template=gemma", "fits"),
    ("retry on scripted", "retry=none", "retry=none does not apply to model=scripted"),
    ("no key", "model=openai", "OPENAI_API_KEY"),
    ("judge without a key", "scorer=model_graded judge=openai", "or judge.api_key"),
    ("litellm id without provider", "model=litellm model.model_id=gpt4", "provider/model"),
    ("no responses file", "model.responses_file={tmp}/none.jsonl", "none.jsonl"),
    ("broken responses file", "model.responses_file={tmp}/bad.jsonl", "bad.jsonl:2"),
    ("no task file", "task=file task.path={tmp}/none.jsonl", "none.jsonl"),
    ("broken task file", "task=file task.path={tmp}/broken.jsonl", "broken.jsonl"),
    ("bad schema", "grammar=json_schema grammar.schema.type=objekt", "not a valid JSON schema"),
    (
        "grammar the backend cannot enforce",
        "model=openai model.api_base={server} grammar=regex grammar.pattern=x",
        "grammar=regex cannot be enforced by OpenAIServerModel",
    ),
    ("tests needed", "scorer=code_exec", "scorer.code_exec cannot score task smoke"),
    ("nothing to replay", "cache=replay cache.path={tmp}/none.sqlite", "cache=replay"),
    ("model key typo", "model.exhausted=cycle model.responsez=[a]", "did you mean responses?"),
    ("bad generation", "generation.top_p=3", "generation.top_p=3"),
    ("bad seed", "seed=abc", "seed='abc'"),
    ("agent range", "agent=tool_calling agent.max_steps=0", "agent.max_steps=0"),
    ("field typo", "task=file task.path={tmp}/good.jsonl +task.fields.inptu=x", "task.fields"),
    ("cap typo", "+runner.backend_concurrency.scriptd=1", "did you mean scripted?"),
    ("no deployments", "model=litellm_router", "model.model_list is empty"),
    ("sandbox kind", "sandbox.kind=nothing", "sandbox.kind"),
    ("a group given a boolean", "cache=true", "valid: off, on, replay"),
    ("a group given null", "task=null", "(~task drops it); valid: arithmetic"),
    ("an unknown option in a list", "scorer=[exact,includs]", "no option 'includs'; valid:"),
    ("typo without +", "agent.system_promt=hi", "did you mean system_prompt?"),
    ("a sweep's missing option", "-m model=scripted task=smoke,nothing", "'task/nothing'"),
    ("a sweep's null option", "-m model=scripted task=smoke,null", "task takes an option"),
    ("not a model folder", "model=transformers model.model_id={tmp}", "without config.json"),
    ("no such device", "model=transformers model.device_map=gpu0", "unknown device_map 'gpu0'"),
    ("a GPU this machine lacks", "model=transformers model.device_map=cuda:99", "cuda:99"),
    ("not a URL", "model=openai model.api_base=localhost:8000", "not an http(s) URL"),
    ("not http", "model=openai model.api_base=ftp://127.0.0.1/v1", "model.api_base=ftp://"),
    ("an empty model id", "model=openai model.api_base={server} model.model_id=", "is empty"),
    ("a prompt file not there", "agent.system_prompt=prompts/none.md", "no such prompt file"),
    (
        "a client value of the wrong type",
        "model=openai model.api_base={server} +model.client_kwargs.max_retries=abc",
        "model.client_kwargs.max_retries='abc' does not fit openai.OpenAI(max_retries: int)",
    ),
    ("a key one level up", "scorer=numeric scorer.tolerance=-1", "scorer.numeric.tolerance?"),
    ("an unquoted pattern", "grammar=regex grammar.pattern=[a-z]+", "quote a value"),
    (
        "a scorer key added one level up",
        "scorer=model_graded judge=scripted +scorer.template=Q",
        "did you mean scorer.model_graded.template?",
    ),
    ("no rows", "task=file task.path={tmp}/good.jsonl task.format=csv", "yields no samples"),
    ("cache path is a folder", "cache=on cache.path={tmp}", "is a folder, not a file"),
    ("cache path not sqlite", "cache=on cache.path={tmp}/good.jsonl", "is not an SQLite file"),
    ("no scripted reply fits", "grammar=json_schema", "no scripted reply of the model fits"),
    ("schema unset", "grammar=json_schema grammar.schema=null", "grammar: grammar=json_schema"),
    ("retry said once", "model=openai model.api_base={server} retry.attempts=0", "retry.attempt"),
    (
        "client key typo",
        "model=openai model.api_base={server} +model.client_kwargs.timout=5",
        "model.client_kwargs.timout is not a key of openai.OpenAI (did you mean timeout?)",
    ),
    (
        "a model key litellm refuses for the provider",
        "model=litellm model.model_id=anthropic/claude-3-5-sonnet-20240620 model.api_key=k "
        "+model.presence_penalty=0.3",
        "model.presence_penalty: litellm refuses presence_penalty for anthropic/",
    ),
    (
        "litellm local server, provider wants a key",
        "model=litellm model.model_id=openai/x model.api_base={server}",
        "model.api_key (e.g. EMPTY for a keyless local server)",
    ),
]


class FiveModel(Model):
    """A user's own backend, written against smolagents' Model API."""

    def generate(self, messages: list[Any], stop_sequences: Any = None, **kwargs: Any) -> Any:
        return ChatMessage(role="assistant", content="5", token_usage=TokenUsage(3, 1))


def _id(case: object) -> str:
    return str(case.values[0] if hasattr(case, "values") else case[0])  # type: ignore[index]


def add(a: float, b: float) -> float:
    """Adds two numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with running(openai_app) as started:
        yield started


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's working folder, with the data files the configs name."""
    (tmp_path / "good.jsonl").write_text('{"id": "a", "input": "What is 2 + 3?", "target": "5"}\n')
    (tmp_path / "broken.jsonl").write_text('{"id": "a", "input": "x", "target": "y"}\n{oops\n')
    (tmp_path / "bad.jsonl").write_text('"fine"\n{not json\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("HYDRAGENT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def arguments(text: str, folder: Path, server: LoopbackServer) -> list[str]:
    words = text.format(tmp=folder, server=f"{server.url}/v1").split()
    chosen = any(w.startswith("model=") or w == "~model" for w in words)
    return words if chosen else ["model=scripted", *words]


def verdict(command: str, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main([command, *args])
    return code, capsys.readouterr().err


def on_disk(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(("name", "config"), GOOD, ids=[g[0] for g in GOOD])
def test_a_config_validate_accepts_runs_every_sample(
    name: str, config: str, folder: Path, server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = arguments(config, folder, server)
    code, err = verdict("validate", args, capsys)
    assert code == 0, err
    code, err = verdict("run", [*args, f"hydra.run.dir={folder / 'run'}"], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in (folder / "run" / "samples.jsonl").open()]
    assert records and all(r["status"] == "ok" for r in records)


@pytest.mark.parametrize(("name", "config", "says"), BAD, ids=[_id(b) for b in BAD])
def test_a_config_validate_rejects_run_rejects_alike_before_writing_anything(
    name: str,
    config: str,
    says: str,
    folder: Path,
    server: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = arguments(config, folder, server)
    before = on_disk(folder)
    checked, checked_err = verdict("validate", args, capsys)
    ran, ran_err = verdict("run", [*args, f"hydra.run.dir={folder / 'run'}"], capsys)
    assert (checked, ran) == (2, 2), ran_err
    assert checked_err == ran_err and checked_err.count("\n") == 1
    assert checked_err.startswith("hydragent: config error: ") and says in checked_err
    assert on_disk(folder) == before and not (folder / "run").exists()


def test_a_sweep_with_one_bad_job_stops_before_any_job_runs(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = verdict(
        "run", ["-m", "model=scripted,openai", "seed=0,1", f"hydra.sweep.dir={folder / 'sweep'}"],
        capsys,
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "job 2 (model=openai seed=0), job 3 (model=openai seed=1): model.api_key" in err
    assert not (folder / "sweep").exists()
    assert verdict("validate", ["-m", "model=scripted,openai", "seed=0,1"], capsys) == (2, err)


def test_a_problem_every_sweep_job_shares_is_said_once(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["-m", "model=scripted", "seed=0,1,2", "task.limit=0"]
    code, err = verdict("run", [*args, f"hydra.sweep.dir={folder / 'sweep'}"], capsys)
    assert code == 2
    assert err == "hydragent: config error: all 3 jobs: task.limit=0: Input should be " + (
        "greater than or equal to 1\n"
    )


def test_validate_reports_every_problem_at_once(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["model=openai", "task.limit=0", "+runner.max_concurency=2", "tools=calculator"]
    code, err = verdict("validate", args, capsys)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 4, "one line per problem"
    assert all(line.startswith("hydragent: config error: ") for line in lines)
    for part in ("task.limit=0", "max_concurency", "tools=calculator", "OPENAI_API_KEY"):
        assert sum(part in line for line in lines) == 1


@pytest.mark.parametrize(
    ("config", "unsent"),
    [
        ("model=openai model.model_id=o3 generation.temperature=0.5", "generation.temperature"),
        ("model=openai model.model_id=gpt-4o generation.top_k=5", "generation.top_k"),
        (
            "model=litellm model.model_id=openai/o3 model.api_key=EMPTY generation.stop=[END]",
            "generation.stop",
        ),
    ],
)
def test_a_setting_the_backend_never_sends_is_named_by_validate_and_run(
    config: str,
    unsent: str,
    folder: Path,
    server: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A portable setting the chosen model has no parameter for (o3 takes no temperature)
    is not sent, so the request stays valid; validate and the run's log both say so."""
    args = [*config.split(), f"model.api_base={server.url}/v1", "task.limit=1"]
    assert main(["validate", *args]) == 0
    said = f"does not send {unsent} (no such parameter for this model)"
    assert said in capsys.readouterr().out
    server.requests.clear()
    assert main(["run", *args, f"hydra.run.dir={folder / 'run'}"]) == 0
    printed = capsys.readouterr()
    assert said in printed.out + printed.err
    assert said in (folder / "run" / "hydragent.log").read_text()
    key = unsent.removeprefix("generation.")
    assert server.requests and all(key not in r.json for r in server.requests)


def test_validate_and_run_print_the_config_alike_with_cfg_job(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--cfg job` after the overrides: validate's own folder override goes before the flag."""
    printed = []
    for command in ("validate", "run"):
        assert main([command, "model=scripted", "--cfg", "job"]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and "ScriptedModel" in printed[0]
    assert on_disk(folder) == ["bad.jsonl", "broken.jsonl", "good.jsonl"]


@pytest.mark.parametrize("flag", ["", "-m"])
def test_an_output_folder_that_cannot_be_made_is_a_config_error_before_anything_runs(
    flag: str, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "hydra.sweep.dir" if flag else "hydra.run.dir"
    args = [*filter(None, [flag]), "model=scripted", f"{key}={folder / 'good.jsonl' / 'run'}"]
    checked, ran = verdict("validate", args, capsys), verdict("run", args, capsys)
    assert checked == ran and ran[0] == 2 and ran[1].count("\n") == 1
    assert f"{key}=" in ran[1] and "good.jsonl is a file, not a folder" in ran[1]
