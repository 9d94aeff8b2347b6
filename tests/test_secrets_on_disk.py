"""A key given on the command line never reaches any file a run writes, nor its console."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from tests.servers.base import Fault, running
from tests.servers.openai import openai_app

from hydragent.logging_setup import SecretFilter
from hydragent.models.scripted import ScriptedModel
from hydragent.runner import RunFailed, run_job
from hydragent.runner.records import record_line
from hydragent.secrets import MASK, mask_override, protect_nested_override
from test_runner_support import closed_port, compose_job, run_cli

SECRET = "sk-hydragent-test-0123456789abcdef"


def _all_files(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]


def _assert_nowhere(result, *folders: Path) -> None:
    files = _all_files(*folders)
    assert files, "the run wrote nothing to check"
    leaked = [str(p) for p in files if SECRET.encode() in p.read_bytes()]
    assert leaked == []
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr


def test_an_api_key_on_the_command_line_stays_off_disk(tmp_path: Path) -> None:
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    result = run_cli(
        "run",
        "model=scripted",
        f"+model.api_key={SECRET}",
        "cache=on",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"HYDRAGENT_CACHE_DIR": str(cache_dir)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run_dir / "samples.jsonl").exists() and (run_dir / "summary.json").exists()
    _assert_nowhere(result, run_dir, cache_dir, tmp_path / "outputs")


def test_a_failing_remote_sweep_leaks_no_key_either(tmp_path: Path) -> None:
    sweep_dir, cache_dir = tmp_path / "sweep", tmp_path / "cache"
    result = run_cli(
        "run",
        "-m",
        "model=openai",
        f"model.api_key={SECRET}",
        f"model.api_base=http://127.0.0.1:{closed_port()}/v1",
        "retry=none",
        "task.limit=2",
        "cache=on",
        "grammar=none,json_object",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        env={"HYDRAGENT_CACHE_DIR": str(cache_dir)},
    )
    assert result.returncode == 1, result.stderr[-2000:]  # every sample failed
    for job in ("0", "1"):
        assert "error" in (sweep_dir / job / "samples.jsonl").read_text()
    _assert_nowhere(result, sweep_dir, cache_dir, tmp_path / "multirun")


class LeakyModel(ScriptedModel):
    """Stands in for a client library that quotes the key in its error message."""

    def __init__(self, api_key: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key

    def generate(self, messages, *args, **kwargs):
        raise PermissionError(f"Incorrect API key provided: {self.api_key}")


def test_an_error_that_quotes_the_key_is_redacted(tmp_path: Path) -> None:

    cfg = compose_job(
        tmp_path,
        "model=scripted",
        f"model._target_={__name__}.LeakyModel",
        f"+model.api_key={SECRET}",
    )
    with pytest.raises(RunFailed) as failed:
        run_job(cfg, tmp_path / "run")
    assert failed.value.summary["counts"]["error"] == 6
    assert SECRET not in json.dumps(failed.value.summary)
    text = (tmp_path / "run" / "samples.jsonl").read_text()
    assert "Incorrect API key provided: ***" in text
    assert SECRET not in text


@pytest.mark.parametrize("secret", ["sk-plain-123", 'sk-"quoted"\\slash', "sk-ünïcode-ключ"])
def test_a_record_line_never_holds_a_secret_however_json_escapes_it(secret: str) -> None:
    record = {"error": f"denied for key {secret}", "messages": [{"content": [secret]}], "n": 1}
    redacted, line = record_line(record, [secret])
    assert json.dumps(secret)[1:-1] not in line and secret not in line
    assert json.loads(line) == redacted
    assert redacted["error"] == f"denied for key {MASK}"
    assert redacted["messages"][0]["content"] == [MASK]


def test_a_credential_a_server_echoed_is_masked_even_when_the_run_never_knew_it() -> None:
    record = {"error": "401: header was Authorization: Bearer abcdEFGH12345678", "answer": None}
    redacted, line = record_line(record, [])
    assert redacted["error"] == "401: header was Authorization: Bearer ***"
    assert "abcdEFGH12345678" not in line


def test_a_record_without_secrets_is_written_as_it_is() -> None:
    record = {"answer": "Paris", "scores": {"exact": 1.0}}
    assert record_line(record, ["sk-elsewhere"]) == (record, json.dumps(record))


FAST_RETRIES = ("retry.attempts=3", "retry.initial_wait=0.01", "retry.jitter=0")
# What a misbehaving server or proxy sends back: the request's own Authorization header.
ECHO = Fault(
    status=500, body=f"upstream rejected the request; headers: Authorization: Bearer {SECRET}"
)


def test_a_key_from_the_environment_echoed_by_the_server_stays_off_console_and_log(
    tmp_path: Path,
) -> None:
    """The key comes from OPENAI_API_KEY (env interpolation); every retry warning quotes the
    server's error text, which quotes the key."""
    run_dir = tmp_path / "run"
    with running(openai_app) as server:
        server.always_fail = ECHO
        result = run_cli(
            "run",
            "model=openai",
            f"model.api_base={server.url}/v1",
            *FAST_RETRIES,
            "task.limit=2",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
            env={"OPENAI_API_KEY": SECRET},
        )
        assert any(SECRET in r.headers.get("Authorization", "") for r in server.requests)
    assert result.returncode == 1
    log = (run_dir / "hydragent.log").read_text()
    assert "retrying" in log and "Authorization: Bearer ***" in log
    assert "Authorization: Bearer ***" in result.stdout + result.stderr
    _assert_nowhere(result, run_dir)


def test_a_key_nested_in_an_override_is_masked_in_every_file_and_output(tmp_path: Path) -> None:
    """model.model_list=[{..., litellm_params:{api_key:KEY}}] on the command line, in a
    sweep whose server echoes the key back."""
    sweep_dir = tmp_path / "sweep"
    with running(openai_app) as server:
        server.always_fail = ECHO
        deployment = (
            "model.model_list=[{model_name:model-group-1,litellm_params:{model:openai/gpt-4o-mini,"
            f"api_base:'{server.url}/v1',api_key:{SECRET}}}}}]"
        )
        common = ("model=litellm_router", deployment, *FAST_RETRIES)
        result = run_cli(
            "run", "-m", *common, "task.limit=1,2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path
        )
        shown = run_cli("run", *common, "--cfg", "hydra", cwd=tmp_path)
        assert any(SECRET in r.headers.get("Authorization", "") for r in server.requests)
    assert result.returncode == 1  # the server failed every request
    assert shown.returncode == 0, shown.stderr
    reference = "api_key:${oc.env:HYDRAGENT_SECRET_MODEL_MODEL_LIST_0}"
    assert reference in shown.stdout
    # sweep jobs get the override re-escaped by Hydra: `$\{oc.env\:NAME\}`
    for name in ("multirun.yaml", "0/.hydra/overrides.yaml", "0/.hydra/hydra.yaml"):
        assert "HYDRAGENT_SECRET_MODEL_MODEL_LIST_0" in (sweep_dir / name).read_text(), name
    records = [json.loads(line) for line in (sweep_dir / "0" / "samples.jsonl").open()]
    assert any("HYDRAGENT_SECRET_MODEL_MODEL_LIST_0" in o for o in records[0]["overrides"])
    _assert_nowhere(result, sweep_dir, tmp_path / "outputs")
    assert SECRET not in shown.stdout + shown.stderr


def test_secrets_nested_in_an_override_value_move_to_environment_variables() -> None:
    environ: dict[str, str] = {}
    override, moved = protect_nested_override(
        "model.model_list=[{litellm_params:{api_key:'sk-a 1',api_base:x}},"
        '{litellm_params:{"token":"hf-b2","max_tokens":5}}]',
        environ,
    )
    assert moved == ["sk-a 1", "hf-b2"] and sorted(environ.values()) == ["hf-b2", "sk-a 1"]
    assert override == (
        "model.model_list=[{litellm_params:{api_key:${oc.env:HYDRAGENT_SECRET_MODEL_MODEL_LIST_0}"
        ',api_base:x}},{litellm_params:{"token":${oc.env:HYDRAGENT_SECRET_MODEL_MODEL_LIST_1},'
        '"max_tokens":5}}]'
    )
    assert mask_override("x.deployments=[{password:hunter22,user:me}]") == (
        f"x.deployments=[{{password:{MASK},user:me}}]"
    )


def test_the_log_filter_masks_known_values_arguments_and_tracebacks() -> None:
    secrets = SecretFilter()
    secrets.add(["s3cr3t-value"])
    try:
        raise ValueError("denied for s3cr3t-value")
    except ValueError:
        record = logging.LogRecord(
            "httpx", logging.WARNING, __file__, 1, "retry after %s (%s)",
            ("HTTP 401 from key s3cr3t-value", "Bearer abcdefgh12345678"), True,
        )  # fmt: skip
        import sys

        record.exc_info = sys.exc_info()
    assert secrets.filter(record)
    formatted = logging.Formatter().format(record)
    assert "s3cr3t-value" not in formatted and "abcdefgh12345678" not in formatted
    assert "retry after HTTP 401 from key *** (Bearer ***)" in formatted
    assert "ValueError: denied for ***" in formatted
