"""The response cache: keyed on what decides a reply, shared safely by threads, replayable."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hydragent.grammar import Grammar
from hydragent.messages import ChatMessage
from hydragent.models.base import Model, ModelRequest
from hydragent.models.scripted import ScriptedModel
from hydragent.runner import run_job
from hydragent.runner.cache import CacheMiss, ResponseCache, ResponseStore, cache_clear, cache_stats
from hydragent.runner.request_path import route
from test_runner_support import compose_job, run_cli

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def cached(tmp_path: Path, mode: str = "on", **config) -> tuple[ScriptedModel, ResponseCache]:
    """A scripted model whose requests go through the cache layer, and that layer."""
    model = ScriptedModel(match={"France": "Paris"}, responses=["other"])
    store = ResponseStore(tmp_path / "cache.sqlite")
    model_config = {"_target_": "ScriptedModel", "model_id": "scripted", **config}
    cache = ResponseCache(store, mode, model_config)
    return route(model, [cache]), cache


def test_a_repeated_call_is_answered_from_the_cache(tmp_path: Path) -> None:
    model, cache = cached(tmp_path)
    first = model.generate(QUESTION)
    second = model.generate(QUESTION)
    assert first.content == second.content == "Paris"
    assert second.token_usage == first.token_usage
    assert len(model.calls) == 1
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_key_covers_params_grammar_tools_and_model_config(tmp_path: Path) -> None:
    model, _ = cached(tmp_path)
    model.generate(QUESTION)
    model.generate(QUESTION, stop_sequences=["\n"])
    model.generate(QUESTION, grammar=Grammar(type="regex", pattern="[A-Za-z]+"))
    model.generate(QUESTION, temperature=0.5)
    assert len(model.calls) == 4
    other_config, _ = cached(tmp_path, temperature=0.9)
    other_config.generate(QUESTION)
    assert len(other_config.calls) == 1


def test_secrets_in_the_model_config_never_reach_the_cache_file(tmp_path: Path) -> None:
    model, cache = cached(tmp_path, api_key="sk-cache-secret-123")
    model.generate(QUESTION)
    cache.store.close()
    for file in tmp_path.iterdir():
        assert b"sk-cache-secret-123" not in file.read_bytes()


def test_a_different_secret_still_hits(tmp_path: Path) -> None:
    first, _ = cached(tmp_path, api_key="sk-one")
    first.generate(QUESTION)
    second, _ = cached(tmp_path, api_key="sk-two")
    second.generate(QUESTION)
    assert second.calls == []


def test_replay_fails_clearly_on_a_miss(tmp_path: Path) -> None:
    model, _ = cached(tmp_path, mode="replay")
    with pytest.raises(CacheMiss, match=r"cache=replay: no recorded reply.*cache=on"):
        model.generate(QUESTION)
    assert model.calls == []


def test_threads_share_one_store(tmp_path: Path) -> None:
    model, cache = cached(tmp_path)
    questions = [[{"role": "user", "content": f"France question {i}"}] for i in range(24)]

    def ask(batch):
        for question in batch:
            model.generate(question)

    threads = [threading.Thread(target=ask, args=(questions[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(model.calls) == 24
    assert cache.store.stats()[0] == 24


def test_stats_and_clear(tmp_path: Path) -> None:
    model, _ = cached(tmp_path)
    model.generate(QUESTION)
    path = tmp_path / "cache.sqlite"
    assert "1 replies" in cache_stats(path) and "scripted: 1" in cache_stats(path)
    assert "removed 1 replies" in cache_clear(path)
    assert "0 replies" in cache_stats(path)
    assert "no file yet" in cache_stats(tmp_path / "missing.sqlite")


def test_a_run_replayed_from_the_cache_reproduces_its_scores(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HYDRAGENT_CACHE_DIR", str(tmp_path / "cache"))
    recorded = run_job(compose_job(tmp_path, "model=scripted", "cache=on"), tmp_path / "a")
    assert recorded["cache"] == {"mode": "on", "hits": 0, "model_calls": 6}
    replayed = run_job(compose_job(tmp_path, "model=scripted", "cache=replay"), tmp_path / "b")
    assert replayed["cache"] == {"mode": "replay", "hits": 6, "model_calls": 0}
    assert replayed["metrics"] == recorded["metrics"]
    assert replayed["token_usage"] == recorded["token_usage"]
    assert replayed["config_hash"] == recorded["config_hash"]


def test_replicates_with_another_seed_never_replay_each_other(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HYDRAGENT_CACHE_DIR", str(tmp_path / "cache"))
    run_job(compose_job(tmp_path, "model=scripted", "cache=on", "seed=0"), tmp_path / "a")
    other = run_job(compose_job(tmp_path, "model=scripted", "cache=on", "seed=1"), tmp_path / "b")
    assert other["cache"] == {"mode": "on", "hits": 0, "model_calls": 6}
    again = run_job(compose_job(tmp_path, "model=scripted", "cache=on", "seed=1"), tmp_path / "c")
    assert again["cache"] == {"mode": "on", "hits": 6, "model_calls": 0}


def test_replay_of_an_unrecorded_run_fails_after_writing_its_errors(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HYDRAGENT_CACHE_DIR", str(tmp_path / "cache"))
    # a store that holds another seed's replies only
    run_job(compose_job(tmp_path, "model=scripted", "cache=on", "seed=1"), tmp_path / "other")
    with pytest.raises(RuntimeError, match="6 calls had no recorded reply"):
        run_job(compose_job(tmp_path, "model=scripted", "cache=replay"), tmp_path / "run")
    assert (tmp_path / "run" / "summary.json").exists()


def test_replay_with_no_recorded_replies_is_refused_by_the_build_as_by_validate(
    tmp_path: Path, monkeypatch
) -> None:
    from hydragent.config import ConfigError

    monkeypatch.setenv("HYDRAGENT_CACHE_DIR", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="cache=replay: no recorded replies"):
        run_job(compose_job(tmp_path, "model=scripted", "cache=replay"), tmp_path / "run")
    assert not (tmp_path / "run" / "summary.json").exists()


def test_hydragent_cache_stats_and_clear_from_the_shell(tmp_path: Path) -> None:
    env = {"HYDRAGENT_CACHE_DIR": str(tmp_path / "cache")}
    recorded = run_cli(
        "run",
        "model=scripted",
        "cache=on",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env=env,
    )
    assert recorded.returncode == 0, recorded.stderr[-2000:]
    stats = run_cli("cache", "stats", cwd=tmp_path, env=env)
    assert stats.returncode == 0 and "6 replies" in stats.stdout
    cleared = run_cli("cache", "clear", cwd=tmp_path, env=env)
    assert cleared.returncode == 0 and "removed 6 replies" in cleared.stdout
    assert "0 replies" in run_cli("cache", "stats", cwd=tmp_path, env=env).stdout


def test_the_cached_model_behaves_as_its_backend(tmp_path: Path) -> None:
    inner = ScriptedModel(
        responses=['{"tool": "calculator", "args": {"expression": "2+2"}}'],
        tool_name_key="tool",
        tool_arguments_key="args",
    )
    model = route(inner, [ResponseCache(ResponseStore(tmp_path / "c.sqlite"), "on", {"m": 1})])
    assert model.supported_grammars == inner.supported_grammars
    assert model.model_id == "scripted"
    reply = model.parse_tool_calls(model.generate(QUESTION))
    assert reply.tool_calls[0].function.name == "calculator"
    assert reply.tool_calls[0].function.arguments == {"expression": "2+2"}
    streamed = list(model.generate_stream(QUESTION))
    assert streamed[0].content == reply.content
    assert len(inner.calls) == 1  # the streamed call came from the cache


def test_a_cached_stream_keeps_the_reasoning(tmp_path: Path) -> None:
    class Reasoner(Model):
        def request(self, req: ModelRequest) -> ChatMessage:
            return ChatMessage(role="assistant", content="4", reasoning_content="2 plus 2")

    model = route(
        Reasoner(model_id="r"), [ResponseCache(ResponseStore(tmp_path / "c.sqlite"), "on", {})]
    )
    (delta,) = model.generate_stream(QUESTION)
    assert (delta.content, delta.reasoning_content) == ("4", "2 plus 2")


def _damaged_cache(tmp_path: Path) -> Path:
    """A real cache file whose second page was overwritten (a disk or copy gone wrong)."""
    env = {"HYDRAGENT_CACHE_DIR": str(tmp_path)}
    first = run_cli("run", "model=scripted", "task=smoke", "cache=on", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "responses.sqlite"
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"A" * 4096
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_cache_file_is_named_with_the_fix_by_every_command(tmp_path: Path) -> None:
    path = _damaged_cache(tmp_path)
    env = {"HYDRAGENT_CACHE_DIR": str(tmp_path)}
    for action in ("stats", "clear"):
        result = run_cli("cache", action, cwd=tmp_path, env=env)
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()  # one line, no traceback
        assert f"cache file {path} cannot be read (database disk image is malformed)" in line
        assert f"rm {path}" in line and "cache=off" in line
    runs = sorted(tmp_path.glob("outputs/*/*"))  # the run that recorded the cache
    run = run_cli("run", "model=scripted", "task=smoke", "cache=on", cwd=tmp_path, env=env)
    assert run.returncode == 2 and "Traceback" not in run.stderr  # refused at the start check
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith(f"hydragent: config error: cache.path='{path}': cannot be read"), line
    assert f"rm {path}" in line and "cache=off" in line
    assert sorted(tmp_path.glob("outputs/*/*")) == runs, "no run folder made"


def test_a_file_that_is_not_a_cache_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("my notes, not a database\n")
    result = run_cli("cache", "stats", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert f"cache file {path} cannot be read (file is not a database)" in result.stderr
