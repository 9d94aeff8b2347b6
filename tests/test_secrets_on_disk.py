"""A key given on the command line never reaches any file a run writes, nor its console."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hydragent.runner import run_job
from hydragent.runner.records import record_line
from hydragent.secrets import MASK
from test_runner_support import compose_job, run_cli

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


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        f"model.api_base=http://127.0.0.1:{_closed_port()}/v1",
        "retry=none",
        "task.limit=2",
        "cache=on",
        "grammar=none,json_object",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        env={"HYDRAGENT_CACHE_DIR": str(cache_dir)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for job in ("0", "1"):
        assert "error" in (sweep_dir / job / "samples.jsonl").read_text()
    _assert_nowhere(result, sweep_dir, cache_dir, tmp_path / "multirun")


class LeakyModel:
    """Stands in for a client library that quotes the key in its error message."""

    def __init__(self, api_key: str, **kwargs) -> None:
        self.api_key = api_key
        self.model_id = "leaky"

    def generate(self, messages, **kwargs):
        raise PermissionError(f"Incorrect API key provided: {self.api_key}")

    def cleanup(self) -> None:
        pass


def test_an_error_that_quotes_the_key_is_redacted(tmp_path: Path) -> None:

    cfg = compose_job(
        tmp_path,
        "model=scripted",
        f"model._target_={__name__}.LeakyModel",
        f"+model.api_key={SECRET}",
    )
    summary = run_job(cfg, tmp_path / "run")
    assert summary["counts"]["error"] == 6
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


def test_a_record_without_secrets_is_written_as_it_is() -> None:
    record = {"answer": "Paris", "scores": {"exact": 1.0}}
    assert record_line(record, ["sk-elsewhere"]) == (record, json.dumps(record))
