"""What a user sees while a run goes: client libraries stay quiet, the bar moves while a local
batch decodes, and failures are summarised by cause with the fix."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hydragent import logging_setup, progress
from hydragent.models.scripted import ScriptedModel
from hydragent.runner import run_job
from hydragent.runner.errors import error_causes, known_fix, message_shape
from test_runner_support import closed_port, compose_job, run_cli


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """A root handler like Hydra's console one; logger levels and filters restored after."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in (*logging_setup.NOISY_LOGGERS, "")}
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)
    logging_setup.quiet_third_party(verbose=True)  # let other tests' caplog see everything


def test_client_library_info_lines_stay_off_the_console(console: io.StringIO) -> None:
    logging_setup.install()
    logging.getLogger("httpx").info("HTTP Request: POST /v1/chat/completions 200")
    logging.getLogger("httpx2").info("HTTP Request: POST (a logger nobody listed)")
    logging.getLogger("LiteLLM").info("LiteLLM completion() model= gpt-4o-mini")
    logging.getLogger("openai").warning("a warning still shows")
    logging.getLogger("hydragent.runner").info("our own progress line")
    shown = console.getvalue()
    assert "HTTP Request" not in shown and "LiteLLM completion" not in shown
    assert "a warning still shows" in shown and "our own progress line" in shown


def test_hydra_verbose_brings_a_named_library_back(console: io.StringIO) -> None:
    logging_setup.install(verbose=["httpx"])
    logging.getLogger("httpx").setLevel(logging.DEBUG)  # what Hydra does for hydra.verbose
    logging.getLogger("httpx").info("HTTP Request: POST /v1/chat/completions 200")
    logging.getLogger("urllib3").info("still quiet")
    assert "HTTP Request" in console.getvalue() and "still quiet" not in console.getvalue()


class BatchedLocalModel(ScriptedModel):
    """Decodes for a while before its reply, reporting each step as a local engine does."""

    def generate(self, messages, *args, **kwargs):
        for _ in range(8):
            progress.generated(4)  # one step of a batch of four rows
            time.sleep(0.2)
        return super().generate(messages, *args, **kwargs)


def test_the_bar_moves_while_a_local_batch_decodes(tmp_path: Path, capsys) -> None:
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        f"model._target_={__name__}.BatchedLocalModel",
        "task.limit=1",
        "runner.progress=true",
    )
    run_job(cfg, tmp_path / "run")
    frames = capsys.readouterr().err.replace("\r", "\n").splitlines()
    before_done = [f for f in frames if " 0/1 " in f and "decoded=" in f]
    assert before_done, frames  # the count moved while no sample had finished
    counts = [int(f.split("decoded=")[1].split("]")[0].split(",")[0]) for f in before_done]
    assert counts == sorted(counts) and counts[-1] >= 8


def test_errors_group_by_type_and_message_shape() -> None:
    records = [
        {"id": f"q{i}", "status": "error", "error_type": "RateLimitError", "error": text}
        for i, text in enumerate(
            [
                "RateLimitError: 429 retry in 3.2s for https://api.example.com/v1/x (at a.py:1)",
                "RateLimitError: 429 retry in 7s for https://api.example.com/v1/y (at a.py:9)",
                "RateLimitError: 429 request id 9f8e7d6c5b4a3210 rejected",
            ]
        )
    ] + [{"id": "q9", "status": "ok", "error": None}]
    causes = error_causes(records)
    assert [(c["count"], c["example_id"]) for c in causes] == [(2, "q0"), (1, "q2")]
    assert causes[0]["fix"].startswith("slow down: lower runner.max_concurrency")
    assert (
        message_shape("X", "X: id 0a1b2c3d4e5f6789 at 'path/a' 12") == "X: id <id> at <value> <n>"
    )


@pytest.mark.parametrize(
    ("error_type", "message", "fix"),
    [
        (
            "OpenAIError",
            "The api_key client option must be set either by passing api_key to the client "
            "or by setting the OPENAI_API_KEY environment variable",
            "set OPENAI_API_KEY in the environment",
        ),
        ("ModuleNotFoundError", "No module named 'boto3'", "pip install 'hydragent[bedrock]'"),
        ("NoRegionError", "You must specify a region.", "set AWS_DEFAULT_REGION"),
        ("APIConnectionError", "Connection error.", "check model.api_base"),
        (
            "BadRequestError",
            "No deployments available for selected model",
            "no router deployment could answer",
        ),
    ],
)
def test_a_known_cause_names_its_fix(error_type: str, message: str, fix: str) -> None:
    assert fix in (known_fix(error_type, message) or "")


def test_a_dead_endpoint_is_said_once_and_the_run_ends_early(tmp_path: Path) -> None:
    """Issue 21: nothing listening at api_base meant 18 `retrying ... APIConnectionError`
    lines and 21 s. Now: one retry line, one "nothing answers at <api_base>", the retries
    as a count on the bar, exit 1, and the samples after the first failure are not retried."""
    api_base = f"http://127.0.0.1:{closed_port()}/v1"
    began = time.monotonic()
    done = run_cli(
        "run", "model=openai", f"model.api_base={api_base}", "model.model_id=local",
        "runner.max_concurrency=1", "retry.initial_wait=0.2", "retry.jitter=0",
        "runner.progress=true", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    took = time.monotonic() - began
    assert done.returncode == 1, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).replace("\r", "\n").splitlines()  # logs: stdout
    assert sum("retrying" in line for line in lines) == 1
    assert sum(f"nothing answers at {api_base}" in line and "ERROR" in line for line in lines) == 1
    assert any("retries=3" in line for line in lines)  # one call's three retries, counted
    assert any("6x EndpointUnreachable" in line for line in lines)
    # one call's backoff (0.2 + 0.4 + 0.8 s) and then no waits at all: far from 6 x 1.4 s
    assert took < 25


def test_only_an_endpoint_that_never_answered_fails_fast() -> None:
    from hydragent.models.retry import EndpointUnreachable, RetryPolicy, call_with_retries

    calls: list[str] = []

    def refused() -> str:
        calls.append("dead")
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    before = progress.retries()
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(EndpointUnreachable, match=f"nothing answers at {dead}"):
        call_with_retries(refused, RetryPolicy(attempts=3), sleep=lambda s: None, endpoint=dead)
    assert len(calls) == 3 and progress.retries() - before == 2
    with pytest.raises(EndpointUnreachable):  # the next call is not even tried
        call_with_retries(refused, RetryPolicy(attempts=3), sleep=lambda s: None, endpoint=dead)
    assert len(calls) == 3

    alive = f"http://127.0.0.1:{closed_port()}/v1"
    assert call_with_retries(lambda: "hi", RetryPolicy(), endpoint=alive) == "hi"
    with pytest.raises(ConnectionRefusedError):  # it answered once: a blip, not a dead server
        call_with_retries(refused, RetryPolicy(attempts=2), sleep=lambda s: None, endpoint=alive)
    assert len(calls) == 5


def test_validate_says_whether_something_listens_at_a_local_endpoint(tmp_path: Path) -> None:
    """A TCP connect for loopback and private endpoints only, and no model call."""
    import socket

    dead = f"http://127.0.0.1:{closed_port()}/v1"
    said = run_cli("validate", "model=openai", f"model.api_base={dead}", cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    assert f"model.api_base: nothing listens at {dead}" in said.stdout
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        alive = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        said = run_cli("validate", "model=openai", f"model.api_base={alive}", cwd=tmp_path)
    assert f"model.api_base: something listens at {alive} (a TCP connect" in said.stdout
    remote = run_cli(
        "validate", "model=openai", "model.api_base=https://api.example.com/v1",
        "model.api_key=sk-test-not-a-real-key-0000", cwd=tmp_path,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    assert "listens" not in remote.stdout  # a remote endpoint is never contacted


def test_calls_retrying_side_by_side_stop_once_one_finds_nothing_answers() -> None:
    """With samples in flight together, the first call to give up ends the others' retries:
    they fail at their next attempt instead of each waiting through its own backoff."""
    import threading

    from hydragent.models.retry import EndpointUnreachable, RetryPolicy, call_with_retries

    dead = f"http://127.0.0.1:{closed_port()}/v1"
    slow_started, attempts = threading.Event(), []

    def refused() -> str:
        attempts.append(threading.current_thread().name)
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    def patient() -> None:  # long waits: without the shared verdict it retries for minutes
        slow_started.set()
        with pytest.raises(EndpointUnreachable):
            call_with_retries(refused, RetryPolicy(attempts=50, initial_wait=0.05, jitter=0),
                              endpoint=dead)  # fmt: skip

    other = threading.Thread(target=patient, name="patient")
    other.start()
    slow_started.wait()
    with pytest.raises(EndpointUnreachable):
        call_with_retries(refused, RetryPolicy(attempts=2), sleep=lambda s: None, endpoint=dead)
    other.join(timeout=10)
    assert not other.is_alive()
    assert attempts.count("patient") < 50
