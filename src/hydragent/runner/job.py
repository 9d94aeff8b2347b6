"""`run_job`: one job from a composed config into its run folder (DESIGN.md §4)."""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from hydragent.grammar import Grammar
from hydragent.runner.build import (
    build_agent,
    build_model,
    build_scorers,
    plain,
)
from hydragent.runner.execute import Outcome, run_all, work_on
from hydragent.runner.records import (
    SAMPLES_FILE,
    SUMMARY_FILE,
    RecordWriter,
    config_hash,
    keep_for_resume,
    record_line,
    redact,
    secret_values,
    write_json_atomic,
)
from hydragent.runner.wrappers import UsageMeter
from hydragent.scorers.base import mean_and_stderr
from hydragent.secrets import mask_override, mask_secrets

log = logging.getLogger(__name__)


def job_overrides(output_dir: Path) -> list[str]:
    """The job's command-line overrides, masked: from Hydra when it runs us, else .hydra/."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except (ValueError, ImportError):
        file = output_dir / ".hydra" / "overrides.yaml"
        overrides = [str(o) for o in OmegaConf.load(file)] if file.exists() else []
    return [mask_override(str(o)) for o in overrides]


def to_record(outcome: Outcome, model_id: str, chash: str) -> dict[str, Any]:
    sample = outcome.sample
    return {
        "id": sample.id,
        "input": sample.input,
        "target": sample.target,
        "answer": outcome.answer,
        "scores": outcome.scores,
        "status": outcome.status,
        "error": outcome.error,
        "messages": outcome.messages,
        "token_usage": outcome.token_usage.dict(),
        "judge_token_usage": outcome.judge_token_usage.dict(),
        "latency_s": round(outcome.latency_s, 4),
        "model": model_id,
        "deployment": outcome.deployment,
        "config_hash": chash,
    }


def summarise(records: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    metric_names = sorted({name for r in records for name in r["scores"]})
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    judge_usage = dict.fromkeys(usage, 0)
    for record in records:
        for key in usage:
            usage[key] += int(record["token_usage"].get(key, 0))
            judge_usage[key] += int((record.get("judge_token_usage") or {}).get(key, 0))
    latencies = [r["latency_s"] for r in records]
    return {
        "metrics": {
            name: mean_and_stderr(r["scores"][name] for r in records if name in r["scores"])
            for name in metric_names
        },
        "counts": {
            "total": len(records),
            "ok": sum(r["status"] == "ok" for r in records),
            "error": sum(r["status"] != "ok" for r in records),
        },
        "token_usage": usage,
        "judge_token_usage": judge_usage,
        "latency_s": mean_and_stderr(latencies),
        **extra,
    }


def results_table(summary: dict[str, Any]) -> str:
    rows = [("metric", "mean ± stderr", "n")]
    for name, stat in summary["metrics"].items():
        rows.append((name, f"{stat['mean']:.3f} ± {stat['stderr']:.3f}", str(stat["n"])))
    counts, usage = summary["counts"], summary["token_usage"]
    judged = summary.get("judge_token_usage", {}).get("total_tokens", 0)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        f"samples {counts['total']} (ok {counts['ok']}, errors {counts['error']}, "
        f"not run {summary.get('not_run', 0)}), tokens {usage['total_tokens']}"
        + (f" (judge {judged})" if judged else "")
        + f", wall {summary['wall_time_s']:.2f}s"
    )
    return "\n".join(lines)


class ResultSink:
    """Takes each finished sample on the runner's main thread: writes its line (flushed, see
    RecordWriter), keeps the record for the summary, and moves the progress bar."""

    def __init__(
        self,
        path: Path,
        records: dict[str, dict[str, Any]],
        total: int,
        zero: dict[str, float],
        stamp: dict[str, Any],
        secrets: list[str],
        show_progress: bool,
    ) -> None:
        self.records = records
        self.zero = zero
        self.stamp = stamp
        self.secrets = secrets
        self.headline = next(iter(zero), "score")
        self.errors = self.tokens = self.scored = 0
        self.score = 0.0
        self.writer = RecordWriter(path)
        self.bar = tqdm(
            total=total,
            initial=len(records),
            desc="samples",
            disable=not show_progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def __call__(self, outcome: Outcome) -> None:
        if outcome.status == "error":
            for name, value in self.zero.items():
                outcome.scores.setdefault(name, value)
        record, line = record_line(to_record(outcome, **self.stamp), self.secrets)
        self.writer.write(line)
        self.records[outcome.sample.id] = record
        self.errors += outcome.status != "ok"
        self.tokens += outcome.token_usage.total_tokens
        self.score += outcome.scores.get(self.headline, 0.0)
        self.scored += 1
        self.bar.set_postfix(
            {
                self.headline: f"{self.score / self.scored:.3f}",
                "errors": self.errors,
                "tokens": self.tokens,
            },
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        self.writer.close()


def _model_calls(cached: Any) -> int | None:
    """Calls that reached the backend; unknown without a cache, zero in replay."""
    if cached is None:
        return None
    return 0 if cached.mode == "replay" else cached.misses


def run_job(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Run every sample not already done into `output_dir`; return the summary."""
    began = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resolved = plain(cfg)
    chash = config_hash(resolved)
    secrets = secret_values(resolved)
    runner = cfg.get("runner") or OmegaConf.create({})
    task = instantiate(cfg.task, _convert_="all")
    samples = task.samples()
    seed = cfg.get("seed")
    model, cached = build_model(
        cfg.model, cfg.get("cache"), plain(runner.get("backend_concurrency")), seed
    )
    judge = None
    if cfg.get("judge"):
        judge = UsageMeter(build_model(cfg.judge, cfg.get("cache"), None, seed)[0])
    try:
        scorers = build_scorers(cfg.get("scorer"), judge)
        agent = build_agent(cfg.agent, cfg.get("tools"))
        grammar = Grammar.coerce(cfg.get("grammar"))
        samples_path = output_dir / SAMPLES_FILE
        kept = keep_for_resume(samples_path, chash)
        records = {s.id: kept[s.id] for s in samples if s.id in kept}
        todo = [s for s in samples if s.id not in kept]
        log.info("%d samples: %d done earlier, %d to run", len(samples), len(records), len(todo))
        resumed = len(records)
        sink = ResultSink(
            samples_path,
            records,
            total=len(samples),
            zero={k: v for s in scorers for k, v in s.zero().items()},
            stamp={"model_id": str(model.model_id), "chash": chash},
            secrets=secrets,
            show_progress=bool(runner.get("progress", True)),
        )
        attempts = int(runner.get("attempts", 1) or 1)
        try:
            not_run = run_all(
                todo,
                lambda s: work_on(s, agent, model, grammar, scorers, attempts, judge),
                sink,
                max_concurrency=max(1, int(runner.get("max_concurrency", 4))),
                sample_timeout_s=runner.get("sample_timeout_s"),
                timeout_s=runner.get("timeout_s"),
            )
        finally:
            sink.close()
        summary = summarise(
            [records[s.id] for s in samples if s.id in records],
            not_run=len(not_run),
            resumed=resumed,
            wall_time_s=round(time.perf_counter() - began, 3),
            config_hash=chash,
            overrides=job_overrides(output_dir),
            model=str(model.model_id),
            task=task.name,
            cache={
                "mode": cached.mode if cached else "off",
                "hits": cached.hits if cached else 0,
                "model_calls": _model_calls(cached),
            },
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        summary = redact(mask_secrets(summary), secrets)
        write_json_atomic(output_dir / SUMMARY_FILE, summary)
        print(results_table(summary))
        print(f"Run folder: {output_dir.resolve()}")
        if cached is not None and cached.mode == "replay" and cached.misses:
            raise RuntimeError(
                f"cache=replay: {cached.misses} calls had no recorded reply in "
                f"{cached.store.path}; run once with cache=on to record them"
            )
        return summary
    finally:
        model.cleanup()
        if judge is not None:
            judge.cleanup()
