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
from test_runner_support import compose_job


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
