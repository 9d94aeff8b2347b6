"""`hydragent run model=<remote backend> ... task=smoke`, as a user types it, against loopback
servers: each backend's config composes, instantiates, reaches the server and records samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import LoopbackServer, bedrock_app, openai_app, running

pytestmark = pytest.mark.timeout(300)

REPLY = "Hello from the loopback server."


@pytest.fixture(scope="module")
def openai_server() -> Iterator[LoopbackServer]:
    with running(openai_app) as server:
        yield server


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[LoopbackServer]:
    with running(bedrock_app) as server:
        yield server


def hydragent_run(overrides: list[str], run_dir: Path, env: dict[str, str]) -> list[dict]:
    """Run the CLI in a subprocess; return the samples it wrote."""
    command = [sys.executable, "-m", "hydragent.cli", "run", *overrides, "task=smoke"]
    command += ["retry=none", f"hydra.run.dir={run_dir}"]
    environment = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, (
        f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def assert_every_sample_answered(samples: list[dict]) -> None:
    assert samples, "the smoke task wrote no samples"
    assert {sample["status"] for sample in samples} == {"ok"}
    assert {sample["answer"] for sample in samples} == {REPLY}


def test_openai(openai_server: LoopbackServer, tmp_path: Path) -> None:
    before = len(openai_server.requests)
    samples = hydragent_run(
        ["model=openai", f"model.api_base={openai_server.url}/v1", "model.model_id=m"],
        tmp_path / "run",
        {"OPENAI_API_KEY": "sk-loopback"},
    )
    assert_every_sample_answered(samples)
    received = openai_server.requests[before:]
    assert len(received) == len(samples)
    assert received[0].headers["Authorization"] == "Bearer sk-loopback"
    assert received[0].json["model"] == "m"
    assert received[0].json["seed"] == 0  # the run's default seed


def test_the_run_seed_reaches_the_server_and_a_seed_on_the_model_wins(
    openai_server: LoopbackServer, tmp_path: Path
) -> None:
    common = ["model=openai", f"model.api_base={openai_server.url}/v1", "model.model_id=m"]
    env = {"OPENAI_API_KEY": "sk-loopback"}
    before = len(openai_server.requests)
    hydragent_run([*common, "seed=3"], tmp_path / "run-seed", env)
    assert {r.json["seed"] for r in openai_server.requests[before:]} == {3}
    before = len(openai_server.requests)
    hydragent_run([*common, "seed=3", "model.seed=7"], tmp_path / "model-seed", env)
    assert {r.json["seed"] for r in openai_server.requests[before:]} == {7}


def test_azure_openai(openai_server: LoopbackServer, tmp_path: Path) -> None:
    before = len(openai_server.requests)
    samples = hydragent_run(
        ["model=azure_openai", "model.model_id=my-deployment"],
        tmp_path / "run",
        {
            "AZURE_OPENAI_ENDPOINT": openai_server.url,
            "AZURE_OPENAI_API_KEY": "azure-loopback",
            "OPENAI_API_VERSION": "2024-10-21",
        },
    )
    assert_every_sample_answered(samples)
    received = openai_server.requests[before]
    assert received.path == "/openai/deployments/my-deployment/chat/completions"
    assert received.headers["api-key"] == "azure-loopback"


def test_inference_client(openai_server: LoopbackServer, tmp_path: Path) -> None:
    before = len(openai_server.requests)
    samples = hydragent_run(
        ["model=inference_client", f"model.base_url={openai_server.url}/v1", "model.model_id=m"],
        tmp_path / "run",
        {"HF_TOKEN": "hf_loopback"},
    )
    assert_every_sample_answered(samples)
    assert openai_server.requests[before].headers["Authorization"] == "Bearer hf_loopback"
    assert openai_server.requests[before].json["seed"] == 0


def test_litellm(openai_server: LoopbackServer, tmp_path: Path) -> None:
    before = len(openai_server.requests)
    samples = hydragent_run(
        ["model=litellm", "model.model_id=openai/m", f"model.api_base={openai_server.url}/v1"],
        tmp_path / "run",
        {"OPENAI_API_KEY": "sk-loopback"},
    )
    assert_every_sample_answered(samples)
    assert openai_server.requests[before].json["model"] == "m"
    assert openai_server.requests[before].json["seed"] == 0  # openai/ takes a seed


def test_litellm_router_least_busy(openai_server: LoopbackServer, tmp_path: Path) -> None:
    deployment = (
        "{model_name:model-group-1,litellm_params:{model:openai/m,"
        f"api_base:'{openai_server.url}/v1'}},model_info:{{label:loopback-1}}}}"
    )
    samples = hydragent_run(
        ["model=litellm_router", "router=least_busy", f"model.model_list=[{deployment}]"],
        tmp_path / "run",
        {"OPENAI_API_KEY": "sk-loopback"},
    )
    assert_every_sample_answered(samples)
    assert {sample["deployment"] for sample in samples} == {"loopback-1"}
    assert openai_server.requests[-1].json["seed"] == 0  # every deployment takes a seed


def test_bedrock(bedrock_server: LoopbackServer, tmp_path: Path) -> None:
    before = len(bedrock_server.requests)
    samples = hydragent_run(
        ["model=bedrock", f"+model.client_kwargs.endpoint_url={bedrock_server.url}"],
        tmp_path / "run",
        {
            "AWS_ACCESS_KEY_ID": "AKIDLOOPBACK",
            "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    assert_every_sample_answered(samples)
    assert bedrock_server.requests[before].path.startswith("/model/us.amazon.nova-lite-v1:0/")
    assert "seed" not in bedrock_server.requests[before].json  # Converse has no seed
