"""The runner's asyncio core (docs/architecture.md, "Runner core"): thousands of samples in
flight on one event loop, each recorded once; the OpenAI backend's async path behaves like
its sync one (same requests, same errors, same retries); models and agents that only have a
sync side still run under it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from benchmarks.latency_server import LatencyServer
from tests.servers import Fault, LoopbackServer, Reply, openai_app, running

from hydragent.agents.base import Agent, AgentResult
from hydragent.agents.steps import Blocking, Generate, adrive, drive
from hydragent.messages import ChatMessage, MessageRole, TokenUsage
from hydragent.models import OpenAIServerModel, retry
from hydragent.models.base import Model, clients_on_first_use
from hydragent.models.errors import MalformedResponseError
from hydragent.runner import run_job
from hydragent.runner.execute import Outcome, run_all
from hydragent.runner.pool import run_loop
from hydragent.runner.request_path import LastReply, route, stop_gate
from hydragent.tasks.base import Sample
from test_runner_support import compose_job, read_lines

pytestmark = pytest.mark.timeout(240)
FAST_RETRY = {"attempts": 3, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.0}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with running(openai_app) as loopback:
        yield loopback


@pytest.fixture(autouse=True, params=["client at construction", "client on first use"])
def client_built(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs twice: with the SDK client built in the constructor (as a user's
    code builds a model) and as the runner builds models, where the async path posts without
    the SDK (models/openai.py, `plain_endpoint`) and builds it only to raise its errors."""
    if request.param == "client at construction":
        yield request.param
        return
    with clients_on_first_use():
        yield request.param


def make_model(server: LoopbackServer, **kwargs: Any) -> OpenAIServerModel:
    options: dict[str, Any] = {"api_base": f"{server.url}/v1", "api_key": "sk-test"}
    options.update({"retry": FAST_RETRY, **kwargs})
    return OpenAIServerModel("gpt-4o-mini", **options)


def agenerate(model: Model, messages: list[Any] = HI, **kwargs: Any) -> ChatMessage:
    """One call through the async path on a fresh loop, its connections closed after."""

    async def call() -> ChatMessage:
        try:
            return await model.agenerate(messages, **kwargs)
        finally:
            await model.aclose()

    return run_loop(call())


# --- the OpenAI backend's async path reads like its sync one -------------------------------


def test_the_async_path_sends_what_the_sync_path_sends(server: LoopbackServer) -> None:
    server.replies.extend([Reply(content="Paris."), Reply(content="Paris.")])
    model = make_model(server, extra_body={"top_k": 3})
    sync = model.generate(HI, stop_sequences=["END"])
    async_ = agenerate(model, stop_sequences=["END"])
    assert async_.content == sync.content == "Paris."
    assert async_.token_usage == sync.token_usage
    first, second = server.requests
    assert second.json == first.json and second.json["top_k"] == 3
    assert second.headers["Authorization"] == "Bearer sk-test"
    assert second.path == first.path == "/v1/chat/completions"


# What only an HTTP stack decides, and the SDK's telemetry, which the plain path leaves out.
NOT_COMPARED = {"host", "content-length", "accept-encoding", "connection"}


def test_the_async_path_reaches_the_server_with_the_sdks_url_query_and_headers(
    server: LoopbackServer,
) -> None:
    """Organization, project, the user's default headers and query: the same on the wire
    whether the SDK's client sends them or the async path does without it."""
    server.replies.extend([Reply(content="a"), Reply(content="a")])
    settings = {
        "organization": "org-1",
        "project": "proj-1",
        "client_kwargs": {"default_headers": {"X-Team": "evals"}, "default_query": {"v": "2"}},
    }
    async_ = agenerate(make_model(server, **settings))
    sync = make_model(server, **settings).generate(HI)
    assert async_.content == sync.content == "a"
    by_sdk, by_loop = server.requests[1], server.requests[0]
    assert by_loop.path == by_sdk.path and by_loop.query == by_sdk.query == {"v": "2"}

    def compared(headers: dict[str, str]) -> dict[str, str]:
        kept = {k.lower(): v for k, v in headers.items()}
        return {k: v for k, v in kept.items() if k not in NOT_COMPARED and "stainless" not in k}

    assert compared(by_loop.headers) == compared(by_sdk.headers)
    assert compared(by_sdk.headers)["openai-organization"] == "org-1"
    assert compared(by_sdk.headers)["x-team"] == "evals"


def test_the_plain_endpoint_keeps_the_sdks_default_timeout() -> None:
    from openai._constants import DEFAULT_TIMEOUT

    from hydragent.models.async_http import SDK_TIMEOUT_S

    assert (DEFAULT_TIMEOUT.connect, DEFAULT_TIMEOUT.read) == SDK_TIMEOUT_S


def test_settings_only_the_sdk_can_read_make_the_async_path_build_its_client(
    monkeypatch: pytest.MonkeyPatch, server: LoopbackServer
) -> None:
    """An allow-list: an environment variable the SDK reads, or a client setting the plain
    path does not know, and the SDK builds the client the async path posts with."""
    with clients_on_first_use():
        plain = make_model(server)
        assert plain.plain_endpoint() is not None
        assert make_model(server, client_kwargs={"http_client": None}).plain_endpoint() is None
        monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-From-Env: 1")
        model = make_model(server)
        assert model.plain_endpoint() is None
        server.replies.append(Reply(content="ok"))
        assert agenerate(model).content == "ok"
        assert model._client is not None  # built by the SDK, as settings it alone reads ask


def test_a_429_is_retried_after_the_servers_retry_after_on_the_loop(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.faults.append(Fault(status=429, body="slow down", retry_after="0.25"))
    with caplog.at_level(logging.WARNING, logger="hydragent.models"):
        assert agenerate(make_model(server)).content
    assert len(server.requests) == 2
    assert "in 0.25s after HTTP 429" in caplog.text


def test_async_errors_are_the_sdks_own_types_and_retries_are_bounded(
    server: LoopbackServer,
) -> None:
    server.always_fail = Fault(status=503, body="upstream overloaded")
    with pytest.raises(openai.InternalServerError, match=r"503.*upstream overloaded") as failure:
        agenerate(make_model(server))
    assert failure.value.status_code == 503
    assert len(server.requests) == FAST_RETRY["attempts"]


def test_an_async_client_error_is_not_retried(server: LoopbackServer) -> None:
    server.faults.append(Fault(status=400, body="messages must not be empty"))
    with pytest.raises(openai.BadRequestError, match="messages must not be empty"):
        agenerate(make_model(server))
    assert len(server.requests) == 1


def test_a_hung_server_times_out_and_a_reset_is_retried(server: LoopbackServer) -> None:
    server.faults.extend([Fault(kind="hang", seconds=30)] * 2)
    model = make_model(server, client_kwargs={"timeout": 0.3})
    model.retry.attempts = 2  # type: ignore[union-attr]
    with pytest.raises(openai.APITimeoutError):
        agenerate(model)
    assert len(server.requests) == 2
    server.faults.append(Fault(kind="reset"))
    assert agenerate(make_model(server)).content
    assert len(server.requests) == 4


def test_an_unreachable_server_is_the_sdks_connection_error() -> None:
    model = OpenAIServerModel("m", api_base="http://127.0.0.1:9/v1", api_key="k", retry=False)
    with pytest.raises(openai.APIConnectionError):
        agenerate(model)


def test_an_endpoint_that_never_answers_fails_fast_on_the_loop_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retry, "ENDPOINTS", retry._Endpoints())  # this test's own record
    dead = "http://127.0.0.1:1/v1"
    model = OpenAIServerModel("m", api_base=dead, api_key="k", retry=FAST_RETRY)
    with pytest.raises(retry.EndpointUnreachable, match=r"127\.0\.0\.1:1"):
        agenerate(model)  # spends its retries, then names the endpoint
    began = time.monotonic()
    with pytest.raises(retry.EndpointUnreachable):
        agenerate(model)  # the next call fails at once, without retrying
    assert time.monotonic() - began < 0.05


def test_a_malformed_body_is_a_clear_error_on_the_loop(server: LoopbackServer) -> None:
    server.faults.append(Fault(kind="malformed"))
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        agenerate(make_model(server))


def test_a_client_the_user_set_is_called_as_given(server: LoopbackServer) -> None:
    server.replies.append(Reply(content="from the user's client"))
    model = make_model(server)
    model.client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-user", max_retries=0)
    assert agenerate(model).content == "from the user's client"
    assert server.requests[0].headers["Authorization"] == "Bearer sk-user"


# --- models and agents with only a sync side ------------------------------------------------


class OnlyGenerate(Model):
    """A smolagents-style subclass of a user's: a sync `generate`, nothing else."""

    def generate(self, messages: list[Any], **kwargs: Any) -> ChatMessage:  # type: ignore[override]
        time.sleep(0.01)  # a blocking call: it must not run on the event loop
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"seen {len(messages)}")


def test_a_sync_only_model_runs_in_the_pool_routed_or_not() -> None:
    assert agenerate(OnlyGenerate()).content == "seen 1"
    replies = LastReply()
    routed = route(OnlyGenerate(), [stop_gate, replies])

    async def call() -> tuple[str, str | None]:
        reply = await routed.agenerate(HI)
        return str(reply.content), replies.take()

    assert run_loop(call()) == ("seen 1", "seen 1")


class RunOnly(Agent):
    """An agent of a user's with only `run`."""

    def run(self, task: str, model: Any, grammar: Any = None, sample: Any = None) -> AgentResult:
        return AgentResult(answer=model.generate([{"role": "user", "content": task}]).content)


def test_an_agent_with_only_run_works_under_the_loop() -> None:
    result = run_loop(RunOnly().arun("hello", OnlyGenerate()))
    assert result.answer == "seen 1"


def steps_with_a_tool_and_a_failing_call() -> Any:
    """Steps as an agent writes them: a tool result, a model error handed back at its yield."""
    doubled = yield Blocking(lambda x: 2 * x, (21,))
    try:
        yield Generate([{"role": "user", "content": "fail"}])
    except RuntimeError as error:
        return f"{doubled} after {error}"
    return "no error"


class Failing(Model):
    def generate(self, messages: list[Any], **kwargs: Any) -> ChatMessage:  # type: ignore[override]
        raise RuntimeError("backend down")


def test_one_loop_two_drivers_same_result() -> None:
    sync = drive(steps_with_a_tool_and_a_failing_call(), Failing())
    async_ = run_loop(adrive(steps_with_a_tool_and_a_failing_call(), Failing()))
    assert sync == async_ == "42 after backend down"


# --- the core: deadlines, and 1,024 samples in flight, each recorded once ------------------


def test_a_sample_past_its_deadline_is_an_error_and_the_rest_go_on() -> None:
    samples = [Sample(id=f"s{i}", input=str(i), target="") for i in range(6)]
    finished: list[Outcome] = []

    async def work(sample: Sample) -> Outcome:
        await asyncio.sleep(5 if sample.id == "s2" else 0.01)
        return Outcome(sample=sample, answer=sample.input, token_usage=TokenUsage())

    left = run_loop(run_all(samples, work, finished.append, 3, 0.3, None))
    assert left == []
    by_id = {outcome.sample.id: outcome for outcome in finished}
    assert sorted(by_id) == [s.id for s in samples] and len(finished) == 6
    assert by_id["s2"].error_type == "SampleTimeout"
    assert by_id["s2"].error == "sample deadline of 0.3s exceeded"
    assert all(by_id[s].status == "ok" for s in by_id if s != "s2")


def test_1024_requests_in_flight_each_sample_recorded_once(tmp_path: Path) -> None:
    count = 2048
    task = tmp_path / "many.jsonl"
    rows = [{"id": f"q{i:04d}", "input": f"2+3, question {i}", "target": "5"} for i in range(count)]
    task.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with LatencyServer(latency_ms=1500, steps=1) as server:
        cfg = compose_job(
            tmp_path,
            "model=openai",
            "model.model_id=latency",
            f"model.api_base={server.base_url}",
            "model.api_key=sk-test",
            "task=file",
            f"task.path={task}",
            "runner.max_concurrency=1024",
            "cache=off",
        )
        summary = run_job(cfg, tmp_path / "run")
        stats = server.stats()
    records = read_lines(tmp_path / "run" / "samples.jsonl")
    assert stats["max_in_flight"] >= 1024  # the server saw 1,024 requests at once
    assert stats["requests"] == count
    assert Counter(record["id"] for record in records) == Counter(row["id"] for row in rows)
    assert summary["counts"]["ok"] == count
    assert all(record["answer"] == "5" for record in records)


# --- one writer: lines handed to the kernel together ----------------------------------------


def test_finished_samples_reach_the_file_together_within_the_flush_interval(
    tmp_path: Path,
) -> None:
    """Lines written within `flush_interval_s` of the last flush wait for the next write after
    it, or for `flush()` (the runner's 50 ms tick), or for close (runner/records.py)."""
    from hydragent.runner.records import RecordWriter

    path = tmp_path / "samples.jsonl"
    writer = RecordWriter(path, flush_interval_s=0.2)
    for number in range(3):
        writer.write(json.dumps({"id": number}))
    assert path.read_text() == ""  # within the interval: held
    writer.flush()  # the tick
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [0, 1, 2]
    writer.write(json.dumps({"id": 3}))
    time.sleep(0.25)
    writer.write(json.dumps({"id": 4}))  # past the interval: this write hands both over
    assert len(path.read_text().splitlines()) == 5
    writer.write(json.dumps({"id": 5}))
    writer.close()
    assert len(path.read_text().splitlines()) == 6


def test_a_write_that_fails_ends_the_run_from_the_tick_or_the_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk still ends the run: the failed hand-over raises where it happens."""
    from hydragent.runner.records import RecordWriter

    writer = RecordWriter(tmp_path / "samples.jsonl")

    def full(text: str) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer._handle, "write", full)
    writer.write("{}")
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    writer.write("{}")
    with pytest.raises(OSError, match="No space left"):
        writer.close()
