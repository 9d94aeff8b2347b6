"""AzureOpenAIServerModel against loopback Azure deployment routes, with the real client."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from tests.servers import Fault, LoopbackServer, openai_app, running

from hydragent.models import AzureOpenAIModel, AzureOpenAIServerModel, dry_build

pytestmark = pytest.mark.timeout(60)
FAST_RETRY = {"attempts": 2, "initial_wait": 0.01, "jitter": 0.0}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(openai_app) as loopback:
        yield loopback


def test_the_deployment_route_api_version_and_api_key_header(server: LoopbackServer) -> None:
    model = AzureOpenAIServerModel(
        "my-gpt4o",
        azure_endpoint=server.url,
        api_key="azure-key",
        api_version="2024-10-21",
        retry=FAST_RETRY,
    )
    message = model.generate([{"role": "user", "content": "hi"}], stop_sequences=["x"])
    received = server.requests[0]
    assert received.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert received.query == {"api-version": "2024-10-21"}
    assert received.headers["api-key"] == "azure-key"
    assert received.json["stop"] == ["x"]
    assert message.content == "Hello from the loopback server."


def test_endpoint_key_and_version_come_from_the_environment(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-01-01-preview")
    AzureOpenAIModel("dep", retry=FAST_RETRY).generate([{"role": "user", "content": "hi"}])
    received = server.requests[0]
    assert received.headers["api-key"] == "env-key"
    assert received.query["api-version"] == "2025-01-01-preview"


def test_a_missing_endpoint_fails_at_construction_and_validate_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(ValueError, match="azure_endpoint"):  # the client's own error
        AzureOpenAIServerModel("dep", api_key="k", api_version="2024-10-21")
    with dry_build():
        model = AzureOpenAIServerModel("dep", api_key="k", api_version="2024-10-21")
    assert model.environment_problems() == [
        (
            "azure_endpoint",
            "AzureOpenAIServerModel needs azure_endpoint: set model.azure_endpoint "
            "or AZURE_OPENAI_ENDPOINT",
        )
    ]


def test_azure_errors_surface_with_status_and_text(server: LoopbackServer) -> None:
    server.faults.append(Fault(status=400, body="content filtered"))
    model = AzureOpenAIServerModel(
        "dep", azure_endpoint=server.url, api_key="k", api_version="2024-10-21", retry=FAST_RETRY
    )
    with pytest.raises(openai.BadRequestError, match=r"400.*content filtered"):
        model.generate([{"role": "user", "content": "hi"}])


def test_streaming_on_azure(server: LoopbackServer) -> None:
    model = AzureOpenAIServerModel(
        "dep", azure_endpoint=server.url, api_key="k", api_version="2024-10-21", retry=FAST_RETRY
    )
    deltas = list(model.generate_stream([{"role": "user", "content": "hi"}]))
    assert "".join(d.content or "" for d in deltas) == "Hello from the loopback server."
    assert deltas[-1].token_usage is not None
