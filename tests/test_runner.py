"""The runner end to end through `run_job`: files written, scores, errors, deadlines."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from hydragent.models.scripted import ScriptedModel
from hydragent.record import RECORD_FIELDS
from hydragent.runner import RunFailed, config_hash, run_job
from test_runner_support import compose_job, read_lines


def test_smoke_on_scripted_writes_samples_and_summary(tmp_path: Path, capsys) -> None:
    cfg = compose_job(tmp_path, "model=scripted", "task=smoke", "agent=direct", "scorer=exact")
    summary = run_job(cfg, tmp_path / "run")

    records = read_lines(tmp_path / "run" / "samples.jsonl")
    assert len(records) == 6
    assert sorted(r["index"] for r in records) == list(range(6))  # dataset order
    for record in records:
        assert tuple(record) == tuple(f for f in RECORD_FIELDS if f != "flags")
        assert record["status"] == "ok" and record["error_type"] is None
        assert record["job_id"] == "run" and record["overrides"] == []
        assert record["cost_usd"] is None  # a local stand-in has no price
        assert record["started_at"].startswith("20")
        assert record["scores"] == {"exact": 1.0}
        assert record["messages"][-1]["role"] == "assistant"
        assert record["token_usage"]["total_tokens"] > 0
    assert len({r["config_hash"] for r in records}) == 1

    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["metrics"]["exact"] == {
        "mean": 1.0,
        "ci_low": pytest.approx(0.6097, abs=1e-4),  # Wilson: 6 of 6 right is not certainty
        "ci_high": 1.0,
        "stderr": 0.0,
        "n": 6,
    }
    assert on_disk["counts"] == {"total": 6, "ok": 6, "error": 0, "not_run": 0}
    assert on_disk["errors"] == []
    assert on_disk["backend"] == "ScriptedModel" and on_disk["job_id"] == "run"
    assert on_disk["config_hash"] == records[0]["config_hash"]
    printed = capsys.readouterr().out
    assert "exact" in printed and "1.000 ± 0.000" in printed
    assert str((tmp_path / "run").resolve()) in printed


def test_pricing_prices_a_model_the_cost_map_does_not_know(tmp_path: Path) -> None:
    """A custom or local model gets a cost from the config's `pricing`, per sample and in all."""
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "task=smoke",
        "pricing={input_per_mtok:2.0,output_per_mtok:10.0}",
    )
    summary = run_job(cfg, tmp_path / "run")
    records = read_lines(tmp_path / "run" / "samples.jsonl")
    for record in records:
        usage = record["token_usage"]
        expected = (usage["input_tokens"] * 2.0 + usage["output_tokens"] * 10.0) / 1e6
        assert record["cost_usd"] == pytest.approx(expected)
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in records), abs=1e-6)


def test_wrong_answers_lower_the_mean_with_a_stderr(tmp_path: Path) -> None:
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "~model.match",
        "model.responses=[Paris,wrong,blue,wrong,cold,Earth]",
        "runner.max_concurrency=1",
        "scorer=[exact,includes]",
    )
    summary = run_job(cfg, tmp_path / "run")
    exact = summary["metrics"]["exact"]
    assert exact["mean"] == pytest.approx(4 / 6)
    # stderr of a 0/1 metric: sqrt(p(1-p) * n/(n-1) / n)
    assert exact["stderr"] == pytest.approx(((4 / 6) * (2 / 6) / 5) ** 0.5)
    assert set(summary["metrics"]) == {"exact", "includes"}


def test_failed_samples_are_counted_apart_and_fail_the_run(tmp_path: Path, caplog) -> None:
    """Five of six samples fail: the run raises (exit 1), the errors are not averaged in as
    zeros, and the end-of-run summary names the cause, an example and the fix."""
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "~model.match",
        "model.responses=[Paris]",
        "model.exhausted=error",
        "runner.max_concurrency=1",
    )
    with pytest.raises(RunFailed, match=r"5 of 6 samples failed .*max_error_rate=0"):
        run_job(cfg, tmp_path / "run")
    records = read_lines(tmp_path / "run" / "samples.jsonl")
    errors = [r for r in records if r["status"] == "error"]
    assert len(errors) == 5
    assert all(r["error_type"] == "ScriptedModelExhausted" for r in errors)
    assert all(r["scores"] == {} for r in errors)

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metrics"]["exact"]["mean"] == 1.0 and summary["metrics"]["exact"]["n"] == 1
    assert summary["counts"] == {"total": 6, "ok": 1, "error": 5, "not_run": 0}
    (cause,) = summary["errors"]
    assert cause["count"] == 5 and cause["example_id"] in {r["id"] for r in errors}
    assert "ScriptedModelExhausted" in cause["cause"]
    assert cause["fix"] == "give more model.responses, or model.exhausted=cycle"
    logged = caplog.text
    assert "5 of 6 samples failed, by cause:" in logged and "fix: give more" in logged


def test_a_tolerated_error_rate_lets_the_run_pass(tmp_path: Path) -> None:
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "~model.match",
        "model.responses=[Paris,wrong,blue,wrong,cold]",
        "model.exhausted=error",
        "runner.max_concurrency=1",
        "runner.max_error_rate=0.2",
    )
    summary = run_job(cfg, tmp_path / "run")  # 1 of 6 failed: 17% is within 20%
    assert summary["counts"]["error"] == 1
    assert summary["metrics"]["exact"]["mean"] == pytest.approx(3 / 5)


def test_task_limit_and_concurrency_run_every_sample_once(tmp_path: Path) -> None:
    cfg = compose_job(tmp_path, "model=scripted", "task.limit=4", "runner.max_concurrency=3")
    run_job(cfg, tmp_path / "run")
    ids = [r["id"] for r in read_lines(tmp_path / "run" / "samples.jsonl")]
    assert sorted(ids) == sorted(["smoke-capital", "smoke-rome", "smoke-sky", "smoke-bees"])


class SlowModel(ScriptedModel):
    """A scripted backend that blocks while the test counts concurrent calls."""

    active = 0
    peak = 0
    lock = threading.Lock()

    def generate(self, messages, *args, **kwargs):
        with SlowModel.lock:
            SlowModel.active += 1
            SlowModel.peak = max(SlowModel.peak, SlowModel.active)
        try:
            if "capital of France" in str(messages):
                time.sleep(3)
            else:
                time.sleep(0.2)
            return super().generate(messages, *args, **kwargs)
        finally:
            with SlowModel.lock:
                SlowModel.active -= 1


def test_concurrency_cap_per_backend_and_sample_deadline(tmp_path: Path) -> None:
    SlowModel.peak = 0
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        f"model._target_={__name__}.SlowModel",
        "runner.max_concurrency=6",
        "+runner.backend_concurrency.SlowModel=2",
        "runner.sample_timeout_s=1.5",
    )
    with pytest.raises(RunFailed) as failed:
        run_job(cfg, tmp_path / "run")
    records = {r["id"]: r for r in read_lines(tmp_path / "run" / "samples.jsonl")}
    assert SlowModel.peak == 2
    assert records["smoke-capital"]["status"] == "error"
    assert records["smoke-capital"]["error_type"] == "SampleTimeout"
    assert "sample deadline of 1.5s exceeded" in records["smoke-capital"]["error"]
    assert failed.value.summary["counts"]["ok"] == 5
    assert "runner.sample_timeout_s" in failed.value.summary["errors"][0]["fix"]


def test_overall_deadline_leaves_unstarted_samples_for_a_rerun(tmp_path: Path) -> None:
    slow = ("model=scripted", f"model._target_={__name__}.SlowModel", "runner.max_concurrency=1")
    # The first sample (capital) takes 3 s: the 0.5 s run deadline ends it, the rest wait.
    with pytest.raises(RunFailed, match="6 of 6 samples failed or did not run"):
        run_job(compose_job(tmp_path, *slow, "runner.timeout_s=0.5"), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["counts"] == {"total": 6, "ok": 0, "error": 1, "not_run": 5}
    (record,) = read_lines(tmp_path / "run" / "samples.jsonl")
    assert record["id"] == "smoke-capital"
    assert "run deadline of 0.5s exceeded" in record["error"]

    rerun = run_job(compose_job(tmp_path, *slow), tmp_path / "run")
    assert rerun["counts"] == {"total": 6, "ok": 6, "error": 0, "not_run": 0}


def test_config_hash_ignores_concurrency_limit_and_secrets_but_not_the_model(
    tmp_path: Path,
) -> None:
    from omegaconf import OmegaConf

    def hash_of(*overrides: str) -> str:
        cfg = compose_job(tmp_path, "model=scripted", *overrides)
        return config_hash(OmegaConf.to_container(cfg, resolve=True))

    base = hash_of()
    assert hash_of("runner.max_concurrency=16", "task.limit=2", "cache=on") == base
    # how a rerun treats failures and earlier results changes no result either
    tolerant = ("runner.sample_timeout_s=5", "runner.max_error_rate=0.5", "runner.resume=fresh")
    assert hash_of(*tolerant) == base
    assert hash_of("+model.api_key=sk-one") == hash_of("+model.api_key=sk-two")
    assert hash_of("model.model_id=other") != base
    assert hash_of("grammar=json_object") != base


def test_model_graded_uses_the_judge_group_built_like_a_model(tmp_path: Path) -> None:
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "scorer=[exact,model_graded]",
        "judge=scripted",
        "~judge.match",
        "judge.responses=[CORRECT]",
        "judge.model_id=the-judge",
    )
    assert cfg.judge._target_ == cfg.model._target_
    summary = run_job(cfg, tmp_path / "run")
    assert summary["metrics"]["model_graded"]["mean"] == 1.0
    assert summary["metrics"]["exact"]["mean"] == 1.0


def test_the_judge_tokens_are_counted_per_sample_apart_from_the_agent(
    tmp_path: Path, capsys
) -> None:
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "scorer=model_graded",
        "judge=scripted",
        "~judge.match",
        "judge.responses=[CORRECT]",
        "runner.max_concurrency=4",
    )
    summary = run_job(cfg, tmp_path / "run")
    records = read_lines(tmp_path / "run" / "samples.jsonl")
    # ScriptedModel counts words: each verdict is one output word, the prompt many input words
    assert {r["judge_token_usage"]["output_tokens"] for r in records} == {1}
    assert all(r["judge_token_usage"]["input_tokens"] > 10 for r in records)
    judged = sum(r["judge_token_usage"]["total_tokens"] for r in records)
    assert summary["judge_token_usage"]["total_tokens"] == judged
    assert summary["token_usage"]["total_tokens"] == sum(
        r["token_usage"]["total_tokens"] for r in records
    )
    assert f"(judge {judged})" in capsys.readouterr().out


def test_a_priced_judges_tokens_are_in_the_samples_cost(tmp_path: Path) -> None:
    """A local agent graded by gpt-4o-mini: each sample costs what its judging cost."""
    from tests.servers import Reply, openai_app, running

    from hydragent.cost import price

    with running(openai_app) as server:
        server.default_reply = Reply(content="CORRECT")
        cfg = compose_job(
            tmp_path,
            "model=scripted",
            "scorer=model_graded",
            "judge=openai",
            f"judge.api_base={server.url}/v1",
            "judge.api_key=test",
            "judge.model_id=gpt-4o-mini",
            "retry=none",
        )
        summary = run_job(cfg, tmp_path / "run")
    records = read_lines(tmp_path / "run" / "samples.jsonl")
    for record in records:
        expected = price("gpt-4o-mini", record["judge_token_usage"])
        assert expected and record["cost_usd"] == pytest.approx(expected)
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in records), abs=1e-6)


def test_without_a_judge_the_judge_tokens_are_zero(tmp_path: Path) -> None:
    summary = run_job(compose_job(tmp_path, "model=scripted"), tmp_path / "run")
    assert summary["judge_token_usage"]["total_tokens"] == 0


def test_model_graded_without_a_judge_fails_before_any_sample(tmp_path: Path) -> None:
    cfg = compose_job(tmp_path, "model=scripted", "scorer=model_graded")
    with pytest.raises(Exception, match="judge="):
        run_job(cfg, tmp_path / "run")


def test_a_csv_file_task_with_a_declared_mapping(tmp_path: Path) -> None:
    data = tmp_path / "questions.csv"
    data.write_text("qid,question,gold\nq1,What is the capital of France?,Paris\n")
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "task=file",
        f"task.path={data}",
        "task.fields.id=qid",
        "task.fields.input=question",
        "task.fields.target=gold",
    )
    summary = run_job(cfg, tmp_path / "run")
    assert read_lines(tmp_path / "run" / "samples.jsonl")[0]["id"] == "q1"
    assert summary["metrics"]["exact"]["mean"] == 1.0
    assert summary["task"] == "questions"


def test_an_api_run_prices_each_record_and_the_total(tmp_path: Path) -> None:
    from tests.servers.base import running
    from tests.servers.openai import openai_app

    with running(openai_app) as server:
        cfg = compose_job(
            tmp_path,
            "model=openai",
            "model.model_id=gpt-4o-mini",
            f"model.api_base={server.url}/v1",
            "model.api_key=sk-loopback-test-key",
            "task.limit=2",
        )
        summary = run_job(cfg, tmp_path / "run")
    records = read_lines(tmp_path / "run" / "samples.jsonl")
    assert all(r["cost_usd"] > 0 for r in records)
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in records), abs=1e-6)
