"""Every command in the README, run as a user types it, with its outcome checked.

The commands are read from the README's ```bash blocks, so the README is tested as written; a
command without a check here fails `test_every_readme_command_has_a_check`. Commands that need
a server reach loopback servers from tests/servers through the clients' own settings
(`OPENAI_BASE_URL`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`), or through the README's
`127.0.0.1:8080` rewritten to the server's port. The servers answer the smoke questions
correctly (from the scripted backend's `match` table), so the checks read scores, the files
written and what reached the server, not only exit codes. Each command runs in its own empty
folder, so `outputs/` and `multirun/` are the ones it wrote.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.servers import LoopbackServer, bedrock_app, openai_app
from tests.servers.base import Recorded, Reply

from hydragent.generation import GenerationConfig

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LOCAL_SERVER = "http://127.0.0.1:8080"  # the address the README's local-server commands use
# The bundled Gemma's first use converts its GGUF once (about 4 minutes on 2 CPUs), then loads
# from the cache in seconds.
BUNDLED_MODEL_S = 900
SMOKE_ANSWERS = {
    needle: answer
    for needle, answer in yaml.safe_load((REPO / "conf/model/scripted.yaml").read_text())[
        "match"
    ].items()
    if isinstance(answer, str)
}


def readme_commands() -> list[str]:
    """The shell commands of the README's bash blocks, trailing comments removed."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


class AnsweringServer(LoopbackServer):
    """A loopback server that answers each question the way the scripted backend does."""

    def __init__(self, app_factory: Callable[[LoopbackServer], Any]) -> None:
        super().__init__(app_factory)
        self._current: Recorded | None = None

    async def record(self, request: Any) -> Recorded:
        # The handlers call next_reply() right after record() with no await in between, so
        # the request recorded last is the one being answered.
        self._current = await super().record(request)
        return self._current

    def next_reply(self) -> Reply:
        text = last_user_text(self._current.json if self._current else {})
        answer = next((a for needle, a in SMOKE_ANSWERS.items() if needle in text), False)
        return Reply(content=answer or "I do not know.")


def last_user_text(body: dict[str, Any]) -> str:
    """The last user turn's text, in the OpenAI or the Bedrock Converse request shape."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    if not users:
        return ""
    content = users[-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(str(part.get("text", "")) for part in content)


@pytest.fixture(scope="module")
def openai_server() -> Iterator[AnsweringServer]:
    server = AnsweringServer(openai_app).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[AnsweringServer]:
    server = AnsweringServer(bedrock_app).start()
    yield server
    server.stop()


@dataclass
class Done:
    """A finished command: its exit code, output and the folder it ran in."""

    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    def ok(self) -> Done:
        assert self.returncode == 0, (
            f"exit {self.returncode}\n{self.stdout[-3000:]}\n{self.stderr[-3000:]}"
        )
        return self

    def run_folder(self) -> Path:
        """The one `outputs/<date>/<time>` folder the command wrote."""
        [folder] = (self.cwd / "outputs").glob("*/*")
        return folder

    def summary(self) -> dict[str, Any]:
        return json.loads((self.run_folder() / "summary.json").read_text())

    def samples(self) -> list[dict[str, Any]]:
        lines = (self.run_folder() / "samples.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


def clean_env(**extra: str) -> dict[str, str]:
    """The user's environment without any real endpoint or key, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "AWS_", "AZURE_OPENAI_", "HF_TOKEN", "HYDRA_"))
    }
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", HYDRA_FULL_ERROR="0", **extra)
    return env


def shell(
    command: str, cwd: Path, env: dict[str, str], server: str | None = None, timeout: float = 280
) -> Done:
    """Run one README command; `hydragent` is this environment's console script."""
    if server is not None:
        command = command.replace(LOCAL_SERVER, server)
    argv = shlex.split(command)
    if argv[0] == "hydragent":
        script = shutil.which("hydragent", path=str(Path(sys.executable).parent))
        argv[:1] = [script] if script else [sys.executable, "-m", "hydragent.cli"]
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return Done(done.returncode, done.stdout, done.stderr, cwd)


def requests_since(server: LoopbackServer, before: int) -> list[dict[str, Any]]:
    return [r.json for r in server.requests[before:]]


# One check per README command. Each runs the command and asserts what it must have done.


def check_scripted_smoke(command: str, tmp_path: Path, **_: Any) -> None:
    done = shell(command, tmp_path, clean_env()).ok()
    summary = done.summary()
    assert summary["counts"]["ok"] == 6 and summary["metrics"]["exact"]["mean"] == 1.0
    assert {s["answer"] for s in done.samples()} >= {"Paris", "Rome", "Earth"}


def check_local_openai_server(
    command: str, tmp_path: Path, openai_server: AnsweringServer, **_: Any
) -> None:
    before = len(openai_server.requests)
    done = shell(command, tmp_path, clean_env(), server=openai_server.url).ok()  # no key set
    assert done.summary()["metrics"]["exact"]["mean"] == 1.0
    sent = openai_server.requests[before:]
    assert len(sent) == 6 and {r.path for r in sent} == {"/v1/chat/completions"}
    assert sent[0].headers["Authorization"] == "Bearer EMPTY"  # a local server needs no key
    assert {r.json["model"] for r in sent} == {"local"}
    assert {r.json["max_tokens"] for r in sent} == {32}  # the smoke task's one-word cap


def check_portable_generation(
    command: str, tmp_path: Path, openai_server: AnsweringServer, **_: Any
) -> None:
    before = len(openai_server.requests)
    env = clean_env(OPENAI_BASE_URL=f"{openai_server.url}/v1", OPENAI_API_KEY="sk-loopback")
    done = shell(command, tmp_path, env).ok()
    assert done.summary()["metrics"]["exact"]["mean"] == 1.0
    for body in requests_since(openai_server, before):
        assert body["model"] == "gpt-4o-mini"
        assert body["temperature"] == 0 and body["max_tokens"] == 64
        assert "max_new_tokens" not in body


def check_structured_output_on_the_bundled_model(command: str, tmp_path: Path, **_: Any) -> None:
    done = shell(command, tmp_path, clean_env(), timeout=BUNDLED_MODEL_S).ok()
    summary = done.summary()
    assert summary["counts"]["ok"] == 4
    assert summary["metrics"]["json_valid"]["mean"] == 1.0  # the grammar held on every answer
    assert all(s["token_usage"]["output_tokens"] <= 64 for s in done.samples())


def check_bedrock_roles(
    command: str, tmp_path: Path, bedrock_server: AnsweringServer, **_: Any
) -> None:
    before = len(bedrock_server.requests)
    env = clean_env(
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock_server.url,
        AWS_ACCESS_KEY_ID="AKIDLOOPBACK",
        AWS_SECRET_ACCESS_KEY="not-a-real-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
    )
    done = shell(command, tmp_path, env).ok()
    assert done.summary()["metrics"]["exact"]["mean"] == 1.0
    sent = bedrock_server.requests[before:]
    assert len(sent) == 6 and sent[0].path == "/model/us.amazon.nova-lite-v1:0/converse"
    for body in (r.json for r in sent):
        assert "system" not in body  # system_as_user
        assert all(len(m["content"]) == 1 and "text" in m["content"][0] for m in body["messages"])
        assert body["inferenceConfig"]["maxTokens"] == 32  # the smoke task's cap


def check_tool_calling(command: str, tmp_path: Path, **_: Any) -> None:
    done = shell(command, tmp_path, clean_env()).ok()
    summary = done.summary()
    assert summary["counts"]["ok"] == 5 and summary["metrics"]["numeric"]["mean"] == 1.0
    for sample in done.samples():
        [observation] = [m for m in sample["messages"] if m["role"] == "tool-response"]
        assert float(observation["content"].split()[-1]) == float(sample["target"])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Done, Path]:
    """The Quickstart's sweep (the one `hydragent report`/`view` then read), run once for its
    own check and the report's."""
    [command] = [c for c in readme_commands() if c.startswith("hydragent run -m model=scripted")]
    done = shell(command, tmp_path_factory.mktemp("sweep"), clean_env()).ok()
    [folder] = (done.cwd / "multirun").glob("*/*")
    return done, folder


def check_sweep(command: str, sweep: tuple[Done, Path], **_: Any) -> None:
    _, folder = sweep
    jobs = sorted(p for p in folder.iterdir() if (p / "summary.json").exists())
    assert len(jobs) == 4  # grammar=none,json_object x seed=0,1
    seen = set()
    for job in jobs:
        summary = json.loads((job / "summary.json").read_text())
        assert summary["metrics"]["json_valid"]["mean"] == 1.0
        assert summary["metrics"]["json_fields"]["mean"] == 1.0
        seen.add(
            tuple(sorted(o for o in summary["overrides"] if o.startswith(("grammar=", "seed="))))
        )
    assert len(seen) == 4


def on_the_sweep(command: str, sweep: tuple[Done, Path]) -> Done:
    """Run a README command that names `multirun/<date>/<time>` on the README's own sweep."""
    done, folder = sweep
    relative = folder.relative_to(done.cwd)
    return shell(
        command.replace("multirun/<date>/<time>", str(relative)), done.cwd, clean_env()
    ).ok()


def check_report(command: str, sweep: tuple[Done, Path], **_: Any) -> None:
    folder = sweep[1]
    report = on_the_sweep(command, sweep)
    assert "report.html" in report.stdout and "results.parquet" in report.stdout
    assert (folder / "report.html").stat().st_size > 0
    pandas = pytest.importorskip("pandas")
    assert len(pandas.read_parquet(folder / "results.parquet")) == 16  # 4 jobs x 4 samples


def check_view(command: str, sweep: tuple[Done, Path], **_: Any) -> None:
    done, folder = sweep
    relative = folder.relative_to(done.cwd)
    shown = on_the_sweep(command, sweep)
    page = folder / "view.html"
    assert f"wrote {relative / 'view.html'}" in shown.stdout and "works offline" in shown.stdout
    html = page.read_text()
    assert "<script" in html and "http://" not in html.replace("http://127.0.0.1", "")
    for job in sorted(p for p in folder.iterdir() if (p / "samples.jsonl").exists()):
        first = json.loads((job / "samples.jsonl").open().readline())
        assert first["id"] in html  # every job's samples are in the page


def check_cfg_job(command: str, tmp_path: Path, **_: Any) -> None:
    done = shell(command, tmp_path, clean_env()).ok()
    config = yaml.safe_load(done.stdout)
    assert config["model"]["_target_"].endswith("AmazonBedrockServerModel")
    roles = config["model"]["custom_role_conversions"]
    assert roles["system"] == "system" and roles["user"] == "user"  # not Bedrock's all_to_user
    assert config["generation"]["max_tokens"] == 32  # the default smoke task's one-word cap
    assert not any(tmp_path.iterdir())  # looking writes nothing


def check_validate(command: str, tmp_path: Path, **_: Any) -> None:
    done = shell(command, tmp_path, clean_env()).ok()  # no OPENAI_API_KEY: a local endpoint
    assert re.search(r"^\s*max_tokens: 64$", done.stdout, re.M)
    assert not any(tmp_path.iterdir())


def check_make(command: str, **_: Any) -> None:
    """`make demo` and `make test` as make would run them on a fresh clone (-n: print, do not
    run, since running the test suite from inside itself would recurse; -B: as if nothing
    were installed yet)."""
    target = command.split()[1]
    done = subprocess.run(["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = {
        "demo": ["hydragent run recipe=quickstart", "pip install -e '.[bundled]'"],
        "test": ["ruff check .", "pytest", "pip install -e '.[all,test]'"],
    }
    assert all(part in done.stdout for part in expected[target])
    if target == "demo":  # issue 21: the demo installs what it needs, not every extra (4 GB)
        assert "[all" not in done.stdout and "llama-cpp" not in done.stdout


def check_recipes_list(command: str, tmp_path: Path, **_: Any) -> None:
    done = shell(command, tmp_path, clean_env()).ok()
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        run_line = path.read_text().splitlines()[2].lstrip("# ")
        assert path.stem in done.stdout and run_line in done.stdout


def check_quickstart_recipe(command: str, tmp_path: Path, **_: Any) -> None:
    done = shell(command, tmp_path, clean_env(), timeout=BUNDLED_MODEL_S).ok()
    assert done.summary()["counts"]["ok"] == 6
    samples = done.samples()
    assert all(s["answer"] and 0 < s["token_usage"]["output_tokens"] <= 16 for s in samples)


def check_sweep_limits(
    command: str, tmp_path: Path, openai_server: AnsweringServer, **_: Any
) -> None:
    before = len(openai_server.requests)
    cache = tmp_path / "cache"
    env = clean_env(
        OPENAI_BASE_URL=f"{openai_server.url}/v1",
        OPENAI_API_KEY="sk-loopback",
        HYDRAGENT_CACHE_DIR=str(cache),
    )
    done = shell(command, tmp_path / "work", env).ok()
    [folder] = (done.cwd / "multirun").glob("*/*")
    jobs = [json.loads(p.read_text()) for p in folder.glob("*/summary.json")]
    assert len(jobs) == 4 and all(job["metrics"]["exact"]["mean"] == 1.0 for job in jobs)
    assert all(job["limits"]["rate_limited"] == 0 for job in jobs)
    assert max(job["limits"]["store_spent_usd"] for job in jobs) <= 2
    assert (folder / "limits.sqlite").is_file() and (cache / "responses.sqlite").is_file()
    assert len(openai_server.requests) - before == 24  # 4 seeds x 6 questions, once each


def check_ray_redis(command: str, tmp_path: Path, openai_server: AnsweringServer, **_: Any):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install 'hydragent[ray]'")
    from tests.limits_support import running_redis

    env = clean_env(OPENAI_BASE_URL=f"{openai_server.url}/v1", OPENAI_API_KEY="sk-loopback")
    with running_redis(tmp_path) as url:
        command = command.replace("redis://127.0.0.1:6379/0", url)
        done = shell(command, tmp_path / "work", env).ok()
    [folder] = (done.cwd / "multirun").glob("*/*")
    jobs = [json.loads(p.read_text()) for p in folder.glob("*/summary.json")]
    assert len(jobs) == 2 and all(job["limits"]["store"] == url for job in jobs)
    assert all(job["counts"]["ok"] == 6 for job in jobs)


SLOW_MARKS = [pytest.mark.slow, pytest.mark.timeout(BUNDLED_MODEL_S + 60)]
# command -> (its check, whether it runs the bundled model: the slow tier)
CHECKS: dict[str, tuple[Callable[..., None], bool]] = {
    "make demo": (check_make, False),
    "make test": (check_make, False),
    "hydragent run model=scripted task=smoke agent=direct scorer=exact": (
        check_scripted_smoke,
        False,
    ),
    "hydragent run model=openai model.api_base=http://127.0.0.1:8080/v1 model.model_id=local": (
        check_local_openai_server,
        False,
    ),
    "hydragent run model=openai model.model_id=gpt-4o-mini generation.temperature=0 "
    "generation.max_tokens=64": (check_portable_generation, False),
    "hydragent run recipe=json_extraction": (check_structured_output_on_the_bundled_model, True),
    "hydragent run model=bedrock roles=system_as_user messages=flat": (check_bedrock_roles, False),
    "hydragent run model=scripted agent=tool_calling tools=calculator task=arithmetic "
    "scorer=numeric runner.max_concurrency=8": (check_tool_calling, False),
    "hydragent run -m model=scripted task=json_extraction scorer=json grammar=none,json_object "
    "seed=0,1": (check_sweep, False),
    "hydragent report multirun/<date>/<time>": (check_report, False),
    "hydragent view multirun/<date>/<time>": (check_view, False),
    "hydragent run --cfg job model=bedrock roles=none": (check_cfg_job, False),
    "hydragent validate model=openai model.api_base=http://127.0.0.1:8080/v1 "
    "generation.max_tokens=64": (check_validate, False),
    "hydragent recipes": (check_recipes_list, False),
    "hydragent run recipe=quickstart": (check_quickstart_recipe, True),
    "hydragent run recipe=tool_use model=scripted": (check_tool_calling, False),
    "hydragent run -m hydra/launcher=joblib hydra.launcher.n_jobs=4 model=openai "
    "model.model_id=gpt-4o-mini seed=0,1,2,3 limits.requests_per_minute=500 "
    "limits.budget_usd=2 cache=on": (check_sweep_limits, False),
    "hydragent run -m hydra/launcher=ray model=openai model.model_id=gpt-4o-mini seed=0,1 "
    "limits.requests_per_minute=500 limits.store=redis://127.0.0.1:6379/0": (
        check_ray_redis,
        False,
    ),
}


def test_the_documented_generation_node_is_the_real_one() -> None:
    """The README's generation table, conf/generation/default.yaml and GenerationConfig name
    the same keys, and agree on the default max_tokens."""
    section = README.read_text().split("## Generation settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(\w+)`", "".join(re.findall(r"^\| (.+?) \|", section, re.M))))
    node = yaml.safe_load((REPO / "conf/generation/default.yaml").read_text())
    assert documented == set(node) == set(GenerationConfig.model_fields)
    assert node["max_tokens"] == GenerationConfig().max_tokens == 1024
    assert node["seed"] == "${seed}"


def test_every_readme_command_has_a_check() -> None:
    commands = readme_commands()
    assert len(commands) == len(set(commands))
    assert set(commands) == set(CHECKS), "a README command changed: update its check here"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(c, marks=SLOW_MARKS if CHECKS.get(c, (None, False))[1] else [], id=c)
        for c in readme_commands()
    ],
)
def test_readme_command(command: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if command not in CHECKS:
        pytest.fail(f"no check for the README command {command!r}")
    check, _ = CHECKS[command]
    wanted = {"openai_server", "bedrock_server", "sweep"} & set(check.__code__.co_varnames)
    fixtures = {name: request.getfixturevalue(name) for name in wanted}
    check(command, tmp_path=tmp_path, **fixtures)
