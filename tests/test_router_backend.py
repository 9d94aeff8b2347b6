"""LiteLLMRouterModel over two loopback deployments, and the `router=` config group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tests.servers import Fault, LoopbackServer, Reply, openai_app, running

from hydragent.models import LiteLLMRouterModel, dry_build

pytestmark = pytest.mark.timeout(120)

ROUTER_CONF = Path(__file__).parents[1] / "conf" / "router"
STRATEGIES = ["simple_shuffle", "least_busy", "latency_based", "usage_based", "cost_based"]


@pytest.fixture
def deployments() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    """A healthy deployment and one that answers 503 to everything."""
    with running(openai_app) as healthy, running(openai_app) as down:
        down.always_fail = Fault(status=503, body="deployment down")
        yield healthy, down


def model_list(healthy: LoopbackServer, down: LoopbackServer) -> list[dict[str, object]]:
    def deployment(group: str, server: LoopbackServer, label: str) -> dict[str, object]:
        params = {"model": "openai/m", "api_base": f"{server.url}/v1", "api_key": "k"}
        return {"model_name": group, "litellm_params": params, "model_info": {"label": label}}

    return [deployment("primary", down, "down-1"), deployment("backup", healthy, "healthy-1")]


def test_every_request_succeeds_through_the_fallback_and_the_down_one_cools_down(
    deployments: tuple[LoopbackServer, LoopbackServer],
) -> None:
    healthy, down = deployments
    model = LiteLLMRouterModel(
        model_id="primary",
        model_list=model_list(healthy, down),
        client_kwargs={
            "routing_strategy": "least-busy",
            "fallbacks": [{"primary": ["backup"]}],
            "num_retries": 0,
            "allowed_fails": 0,
            "cooldown_time": 60,
        },
        retry={"attempts": 1},
    )
    replies = [model.generate([{"role": "user", "content": f"q{i}"}]) for i in range(6)]

    assert all(reply.content == "Hello from the loopback server." for reply in replies)
    assert {reply.metadata["deployment"] for reply in replies} == {"healthy-1"}
    assert len(healthy.requests) == 6
    # After its first failure the down deployment sits out its cooldown: no more traffic.
    assert len(down.requests) == 1


def test_streaming_goes_through_the_router(
    deployments: tuple[LoopbackServer, LoopbackServer],
) -> None:
    healthy, down = deployments
    healthy.replies.append(Reply(content="streamed answer"))
    model = LiteLLMRouterModel(
        model_id="backup", model_list=model_list(healthy, down), retry={"attempts": 1}
    )
    text = "".join(
        d.content or "" for d in model.generate_stream([{"role": "user", "content": "q"}])
    )
    assert text == "streamed answer"


def test_a_group_missing_from_the_model_list_is_reported_by_validate() -> None:
    deployments = [{"model_name": "a", "litellm_params": {"model": "openai/m", "api_key": "k"}}]
    with dry_build():
        missing = LiteLLMRouterModel(model_id="b", model_list=deployments)
        empty = LiteLLMRouterModel(model_id="b", model_list=[])
    ((key, line),) = missing.environment_problems()
    assert key == "model_id" and "groups in model_list: a" in line
    assert empty.environment_problems()[0][0] == "model_list"


def test_wildcard_groups_and_aliases_are_accepted_as_in_smolagents() -> None:
    deployments = [
        {"model_name": "openai/*", "litellm_params": {"model": "openai/*", "api_key": "k"}},
        {"model_name": "fast", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "k"}},
    ]
    wildcard = LiteLLMRouterModel(model_id="openai/gpt-4o", model_list=deployments)
    assert wildcard.answering_models() == ["openai/gpt-4o"]
    assert wildcard.environment_problems() == []
    aliased = LiteLLMRouterModel(
        model_id="cheap",
        model_list=deployments,
        client_kwargs={"model_group_alias": {"cheap": "fast"}},
    )
    assert aliased.answering_models() == ["openai/gpt-4o-mini"]
    assert aliased.client.model_group_alias == {"cheap": "fast"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_router_option_declares_its_policy_and_builds_a_router(
    strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    conf = OmegaConf.load(ROUTER_CONF / f"{strategy}.yaml")
    policy = conf.client_kwargs
    for key in ("routing_strategy", "num_retries", "fallbacks", "cooldown_time", "allowed_fails"):
        assert key in policy
    assert "timeout" in policy
    assert conf.model_list[0].litellm_params.api_key == "sk-from-env"
    resolved = OmegaConf.to_container(conf, resolve=True)
    model = LiteLLMRouterModel(**resolved)  # type: ignore[arg-type]
    assert model.client.routing_strategy == policy.routing_strategy


def test_the_run_seed_is_sent_only_when_every_deployment_of_the_group_takes_one() -> None:
    def group(*models: str) -> LiteLLMRouterModel:
        deployments = [{"model_name": "g", "litellm_params": {"model": m}} for m in models]
        return LiteLLMRouterModel("g", model_list=deployments)

    uniform, mixed = group("openai/a", "openai/b"), group("openai/a", "anthropic/claude-3-5")
    uniform.apply_seed(2)
    mixed.apply_seed(2)
    assert uniform.kwargs.get("seed") == 2
    assert "seed" not in mixed.kwargs
