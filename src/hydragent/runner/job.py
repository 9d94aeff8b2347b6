"""`run_job`: one job from a composed config into its run folder (DESIGN.md §4)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from hydragent import logging_setup, progress
from hydragent.config.assemble import assemble, unsent_lines
from hydragent.models.api import ApiModel
from hydragent.models.base import Model
from hydragent.record import RECORD_FIELDS, SAMPLES_FILE, SUMMARY_FILE, sample_hash
from hydragent.resume_rule import config_hash
from hydragent.runner import lock, stop
from hydragent.runner.build import route_parts
from hydragent.runner.errors import RunFailed, error_report
from hydragent.runner.execute import Outcome, run_all, work_on
from hydragent.runner.pool import collector_spared, run_loop
from hydragent.runner.records import (
    RecordWriter,
    current_results,
    record_line,
    redact,
    write_json_atomic,
)
from hydragent.runner.resume import prepare_folder
from hydragent.runner.summary import results_table, summarise
from hydragent.secrets import environment_secrets, mask_override, mask_secrets, secret_values

log = logging.getLogger(__name__)
REDRAW_S = 0.5  # how often the bar shows a new decoded-token count between samples


def job_overrides(output_dir: Path) -> list[str]:
    """The job's command-line overrides, masked: from Hydra when it runs us, else .hydra/."""
    try:
        from hydra.core.hydra_config import HydraConfig

        # raw: iterating the node would resolve each `${oc.env:...}` the user wrote
        overrides = OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
    except (ValueError, ImportError):
        file = output_dir / ".hydra" / "overrides.yaml"
        overrides = [str(o) for o in OmegaConf.load(file)] if file.exists() else []
    return [mask_override(str(o)) for o in overrides]


def _pricer(
    model: Model, pricing: Mapping[str, Any] | None
) -> Callable[[dict[str, Any], str | None], float | None] | None:
    """`price(usage, deployment)` for the run's model, or None when nothing can price it.

    The config's `pricing` prices any model, local ones included. Without it only remote APIs
    are priced, from LiteLLM's cost map: a router's answer by the deployment that gave it (its
    group name has no price), else by the model id."""
    from hydragent.cost import price

    if pricing:
        return lambda usage, deployment: price(None, usage, pricing)
    if not isinstance(model, ApiModel):
        return None
    model_id = str(model.model_id)

    def priced(usage: dict[str, Any], deployment: str | None) -> float | None:
        cost = price(deployment, usage) if deployment else None
        return cost if cost is not None else price(model_id, usage)

    return priced


class ResultSink:
    """Takes each finished sample on the runner's main thread: writes its line (flushed, see
    RecordWriter), keeps the record for the summary, and moves the progress bar. Between
    samples the bar shows the tokens local engines report (hydragent/progress.py)."""

    def __init__(
        self,
        path: Path,
        records: dict[str, dict[str, Any]],
        total: int,
        stamp: dict[str, Any],
        secrets: list[str],
        show_progress: bool,
        price: Any = None,
        judge_price: Any = None,
    ) -> None:
        self.records = records
        self.stamp = stamp
        self.secrets = secrets
        self.price = price
        self.judge_price = judge_price
        self.errors = self.tokens = self.scored = 0
        self.score = 0.0
        self.headline: str | None = None
        self.decoded_at_start = progress.decoded()
        self.decoded = 0
        self.retries_at_start = progress.retries()  # API retries: a count, not a log line each
        self.retries = 0
        self.drawn_at = 0.0
        self.shown: dict[str, Any] = {}
        self.writer = RecordWriter(path)
        self.bar: Any = _NoBar()  # runner.progress=false: not even tqdm's locks are made
        if show_progress:
            self.bar = tqdm(
                total=total,
                initial=len(records),
                desc="samples",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def to_record(self, outcome: Outcome) -> dict[str, Any]:
        """The sample's record, its fields in the order hydragent.record declares them."""
        sample, usage = outcome.sample, outcome.token_usage.dict()
        values = {
            "id": sample.id,
            "index": self.stamp["index"][sample.id],
            "sample_hash": self.stamp["sample_hashes"].get(sample.id)
            or sample_hash(sample.as_dict()),
            "input": sample.input,
            "target": sample.target,
            "group": sample.metadata.get("group"),  # clusters for the report's paired CIs
            "answer": outcome.answer,
            "raw_reply": outcome.raw_reply,
            "scores": outcome.scores,
            "status": outcome.status,
            "error": outcome.error,
            "error_type": outcome.error_type,
            "messages": outcome.messages,
            "token_usage": usage,
            "judge_token_usage": outcome.judge_token_usage.dict(),
            "cost_usd": self.cost(usage, outcome),
            "latency_s": round(outcome.latency_s, 4),
            "model": self.stamp["model"],
            "deployment": outcome.deployment,
            "sandbox": self.stamp["sandbox"],
            "job_id": self.stamp["job_id"],
            "overrides": self.stamp["overrides"],
            "config_hash": self.stamp["config_hash"],
            "started_at": outcome.started_at,
        }
        return {name: values[name] for name in RECORD_FIELDS if name in values}

    def cost(self, usage: dict[str, Any], outcome: Outcome) -> float | None:
        """The sample's dollars: the agent's tokens, plus the judge's when it grades with a
        priced model; None when neither has a known price."""
        parts = [
            self.price(usage, outcome.deployment) if self.price else None,
            self.judge_price(outcome.judge_token_usage.dict(), None) if self.judge_price else None,
        ]
        known = [part for part in parts if part is not None]
        return sum(known) if known else None

    def _postfix(self) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        if self.headline is not None and self.scored:
            shown[self.headline] = f"{self.score / self.scored:.3f}"
        shown["errors"] = self.errors
        shown["tokens"] = self.tokens
        if self.decoded:
            shown["decoded"] = self.decoded
        if self.retries:
            shown["retries"] = self.retries
        return shown

    def __call__(self, outcome: Outcome) -> None:
        record, line = record_line(self.to_record(outcome), self.secrets)
        self.writer.write(line)
        self.records[outcome.sample.id] = record
        self.errors += outcome.status != "ok"
        self.tokens += outcome.token_usage.total_tokens
        if outcome.status == "ok" and outcome.scores:
            self.headline = self.headline or next(iter(outcome.scores))
            self.score += float(outcome.scores.get(self.headline, 0.0))
            self.scored += 1
        self.bar.update(1)

    def tick(self) -> None:
        """Every 50 ms: hand the finished samples' lines to the kernel, and show the score,
        errors and tokens so far, and the tokens local engines decoded (a new count at most
        twice a second); not once per sample, whose cost counts at a thousand in flight."""
        self.writer.flush()
        decoded = progress.decoded() - self.decoded_at_start
        retries = progress.retries() - self.retries_at_start
        now = time.monotonic()
        counted = (decoded, retries) != (self.decoded, self.retries)
        if counted and now - self.drawn_at >= REDRAW_S:
            self.decoded, self.retries, self.drawn_at = decoded, retries, now
        shown = self._postfix()
        if shown != self.shown:  # a decoded count may come between samples: drawn at once
            self.shown = shown
            self.bar.set_postfix(shown, refresh=counted)

    def close(self) -> None:
        self.tick()
        self.bar.close()
        self.writer.close()


class _NoBar:
    """The progress bar when none is shown."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _job_id(output_dir: Path) -> str:
    """The job's folder name: a sweep job's number, or a single run's time stamp. Records
    carry it with the overrides, so a sweep's records concatenate and still join."""
    return output_dir.resolve().name


def _failed_share(counts: dict[str, int]) -> float:
    """Samples that errored or that the run deadline left unrun: the job did not finish them."""
    return (counts["error"] + counts["not_run"]) / counts["total"] if counts["total"] else 0.0


def _check_failures(summary: dict[str, Any], output_dir: Path) -> None:
    """Raise RunFailed (exit 1) when the summary's verdict is that the job failed."""
    if not summary["failed"]:
        return
    counts, limit = summary["counts"], summary["max_error_rate"]
    overrides = " ".join(summary.get("overrides") or []) or "no overrides"
    raise RunFailed(
        f"{counts['error'] + counts['not_run']} of {counts['total']} samples failed or did not "
        f"run ({_failed_share(counts):.0%} > runner.max_error_rate={limit:g}) in {output_dir} "
        f"({overrides}); causes above and in its hydragent.log",
        summary,
        output_dir,
    )


def run_job(cfg: DictConfig, output_dir: Path, checked: Any = None) -> dict[str, Any]:
    """Run every sample not already done into `output_dir`; return the summary.

    Holds the folder's lock for the job's life (runner/lock.py: a second writer exits 2).
    Raises ResumeConflict (exit 2) before writing anything when the folder holds another
    config's results (runner.resume); RunFailed (exit 1) after writing the summary when more
    samples failed than runner.max_error_rate allows; Interrupted (exit 130/143) after
    writing a summary that says `interrupted: true` when SIGINT or SIGTERM stopped it.
    `checked`: the dry Assembly `hydragent run`'s start check made of this config, whose
    task rows the build takes (config/assemble.py)."""
    output_dir = Path(output_dir)
    lock.acquire(output_dir)
    try:
        with stop.handling():
            return _run_job(cfg, output_dir, checked)
    except stop.Interrupted as stopped:
        if stop.in_launcher_worker():  # a joblib/submitit worker: its job has recorded the stop
            stop.linger(stopped.exit_code)
        raise
    finally:
        lock.release(output_dir)


def _run_job(cfg: DictConfig, output_dir: Path, checked: Any) -> dict[str, Any]:
    began = time.perf_counter()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash(resolved)
    runner = resolved.get("runner") or {}
    overrides = job_overrides(output_dir)
    earlier = prepare_folder(output_dir, chash, str(runner.get("resume") or "auto"), overrides)
    secrets = secret_values(resolved) + environment_secrets()
    logging_setup.install(secrets)
    assembly = assemble(cfg, dry_run=False, checked=checked)  # the one build path
    runner = assembly.runner  # typed: what validate accepted
    logging_setup.quiet_third_party(logging_setup.hydra_verbose())  # clients imported now
    model, samples = assembly.model, assembly.samples
    for line in unsent_lines(assembly.unsent_generation, assembly.backend):
        log.warning("%s", line)
    from hydragent.limits.model import limit_layers  # limits: the one hook

    governor, model_limit, judge_limit = limit_layers(
        assembly.settings, output_dir, model, assembly.judge
    )
    routed = route_parts(
        model, assembly.judge, assembly.settings, assembly.backend, model_limit, judge_limit
    )
    judge, cache = routed.judge, routed.cache
    recording = stop.Recording()  # till the summary is written, a signal only asks
    try:
        index = {s.id: i for i, s in enumerate(samples)}
        # a resume compares every sample's hash with its record's; a fresh folder hashes each
        # sample as its record is written (0.13 s of start-up at 16k samples)
        hashes = {s.id: sample_hash(s.as_dict()) for s in samples} if earlier.records else {}
        latest = current_results(earlier.records, chash, hashes)
        records = {i: r for i, r in latest.items() if r.get("status") == "ok"}
        todo = [s for s in samples if s.id not in records]
        log.info("%d samples: %d done earlier, %d to run", len(samples), len(records), len(todo))
        resumed = len(records)
        sink = ResultSink(
            output_dir / SAMPLES_FILE,
            records,
            total=len(samples),
            stamp={
                "index": index,
                "sample_hashes": hashes,
                "model": str(model.model_id),
                "sandbox": getattr(assembly.sandbox, "name", None),
                "job_id": _job_id(output_dir),
                "overrides": overrides,
                "config_hash": chash,
            },
            secrets=secrets,
            show_progress=bool(runner.get("progress", True)),
            price=_pricer(model, assembly.settings.get("pricing")),  # typed: unset is None
            judge_price=_pricer(judge, None) if judge is not None else None,
        )
        attempts = int(runner.get("attempts", 1) or 1)
        try:
            with logging_setup.lines_off_the_bar(), collector_spared():
                not_run = run_loop(
                    run_all(
                        todo,
                        lambda s: work_on(
                            s,
                            assembly.agent,
                            model,
                            assembly.grammar,
                            assembly.scorers,
                            attempts,
                            routed.meter,
                            routed.replies,
                        ),
                        sink,
                        max_concurrency=max(1, int(runner.get("max_concurrency", 4))),
                        sample_timeout_s=runner.get("sample_timeout_s"),
                        timeout_s=runner.get("timeout_s"),
                        tick=sink.tick,
                        stop=stop.requested,
                    ),
                    close=[model, judge],
                )
        finally:
            sink.close()
        interrupted = stop.requested.is_set()
        target = str(cfg.model.get("_target_", ""))
        summary = summarise(
            sorted(records.values(), key=lambda r: r["index"]),
            not_run=len(not_run),
            resumed=resumed,
            wall_time_s=round(time.perf_counter() - began, 3),
            config_hash=chash,
            overrides=overrides,
            job_id=_job_id(output_dir),
            model=str(model.model_id),
            task=assembly.task.name,
            backend=target.rsplit(".", 1)[-1] or type(model).__name__,
            cache={
                "mode": cache.mode if cache else "off",
                "hits": cache.hits if cache else 0,
                "model_calls": cache.model_calls if cache else None,
            },
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            interrupted=interrupted,
        )
        if governor is not None:
            summary["limits"] = governor.report()
        max_error_rate = float(runner.get("max_error_rate") or 0.0)
        summary["max_error_rate"] = max_error_rate
        summary["failed"] = _failed_share(summary["counts"]) > max_error_rate and not interrupted
        summary = redact(mask_secrets(summary), secrets)
        write_json_atomic(output_dir / SUMMARY_FILE, summary)
        recording.close()
        print(results_table(summary))
        if governor is not None:
            from hydragent.limits.report import limits_line

            print(limits_line(summary["limits"]))
        print(f"Run folder: {output_dir.resolve()}")
        if interrupted:
            raise stop.Interrupted(stop.signum(), summary, output_dir.resolve())
        counts = summary["counts"]
        report = error_report(summary["errors"], counts["error"], counts["total"])
        if report:
            log.error("%s", "\n".join(report))
        if cache is not None and cache.mode == "replay" and cache.misses:
            raise RuntimeError(
                f"cache=replay: {cache.misses} calls had no recorded reply in "
                f"{cache.store.path}; run once with cache=on to record them"
            )
        if governor is not None and governor.exhausted:
            from hydragent.limits.report import budget_message

            message = budget_message(summary["limits"], counts, output_dir, overrides)
            raise RunFailed(message, summary, output_dir)
        _check_failures(summary, output_dir)
        return summary
    finally:
        recording.close()
        model.cleanup()
        if governor is not None:
            governor.close()
        if judge is not None:
            judge.cleanup()
        routed.close()
