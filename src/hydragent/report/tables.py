"""The numbers a report shows: per-job statistics, paired comparisons, the flat results table."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from typing import Any

from hydragent.report.load import INFO_FIELDS, Job, error_causes, setting, varying_and_constant
from hydragent.stats import mean_ci, paired_difference

CONFIDENCE = 0.95
TOKEN_KEYS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cached_tokens")


def job_stats(job: Job) -> dict[str, Any]:
    """What the job table shows for one job, computed from its records."""
    records = job.records
    costs = [r["cost_usd"] for r in records if isinstance(r.get("cost_usd"), int | float)]
    latencies = [r["latency_s"] for r in records if isinstance(r.get("latency_s"), int | float)]
    counts = {
        "total": len(records),
        "ok": sum(r["status"] == "ok" for r in records),
        "error": sum(r["status"] != "ok" for r in records),
        "not_run": int(job.summary.get("counts", {}).get("not_run", job.summary.get("not_run", 0))),
    }
    tokens = {k: sum(int(r["token_usage"].get(k) or 0) for r in records) for k in TOKEN_KEYS}
    return {
        "metrics": {m: mean_ci(job.scores(m)) for m in job.metrics},
        "counts": counts,
        "errors": [{"cause": c, "count": n} for c, n in error_causes(job)],
        "tokens": tokens,
        "cost_usd": sum(costs) if costs else None,
        "cost_known": len(costs),
        "latency_s": sum(latencies) / len(latencies) if latencies else None,
        "wall_time_s": job.summary.get("wall_time_s"),
        "limits": job.summary.get("limits"),  # hydragent/limits: rate, 429s, waits, spend
    }


def pooled_stats(
    jobs: list[Job],
    varying: list[str],
    key: str,
    values: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Jobs that differ only in `key` (replicates, e.g. seeds) pooled into one row each.

    Each sample's score is averaged over the replicates that scored it, and the samples are
    the units of the interval (replicates of one sample are not independent); the interval is
    `mean_ci`'s, as everywhere else, so a pooled 0/1 metric (now a fraction) stays in [0, 1].
    """
    rows: dict[str, list[Job]] = {}
    for job in jobs:  # `values`: each job's settings as the viewer filled them in
        value = values[job.number].get if values else lambda k, job=job: setting(job, k)
        label = " ".join(f"{k}={value(k)}" for k in varying if k != key)
        rows.setdefault(label, []).append(job)
    pooled = []
    for label, members in rows.items():
        metrics = {}
        for metric in sorted({m for job in members for m in job.metrics}):
            per_sample: dict[str, list[float]] = {}
            for job in members:
                for r in job.records:
                    value = r["scores"].get(metric) if r["status"] == "ok" else None
                    if isinstance(value, int | float):
                        per_sample.setdefault(r["id"], []).append(float(value))
            averages = [sum(v) / len(v) for v in per_sample.values()]
            metrics[metric] = mean_ci(averages, CONFIDENCE)
        pooled.append({"label": label, "members": [j.number for j in members], "metrics": metrics})
    return pooled


def _score_table(jobs: list[Job], metrics: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """Every job's scores as arrays over one shared sample order (NaN: errored or unscored),
    which jobs hold each sample, and each sample's group: pairs then cost array operations."""
    import numpy as np

    order: dict[str, int] = {}
    for job in jobs:
        for r in job.records:
            order.setdefault(r["id"], len(order))
    present = np.zeros((len(jobs), len(order)), dtype=bool)
    scores = {m: np.full((len(jobs), len(order)), np.nan) for m in metrics}
    groups: list[Any] = [None] * len(order)
    for j, job in enumerate(jobs):
        for r in job.records:
            i = order[r["id"]]
            present[j, i] = True
            groups[i] = groups[i] if groups[i] is not None else r.get("group")
            for m, value in r["scores"].items():
                scores[m][j, i] = value
    return present, np.asarray(groups, dtype=object), scores


def compare(jobs: list[Job], pairs: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Paired comparisons (B - A per metric, as stats.compare_records) for each (a, b) pair of
    job numbers that share sample ids; JSON-ready dicts with `a` and `b` added."""
    import numpy as np

    metrics = sorted({m for job in jobs for m in job.metrics})
    present, groups, scores = _score_table(jobs, metrics)
    has_groups = any(g is not None for g in groups)
    results = []
    for a, b in pairs:
        shared = present[a] & present[b]
        if not shared.any():
            continue
        for metric in sorted(set(jobs[a].metrics) | set(jobs[b].metrics)):
            x, y = scores[metric][a], scores[metric][b]
            both = shared & ~np.isnan(x) & ~np.isnan(y)
            result = paired_difference(
                x[both],
                y[both],
                groups=list(groups[both]) if has_groups else None,
                confidence=CONFIDENCE,
                metric=metric,
                excluded=int(shared.sum() - both.sum()),
            )
            results.append({"a": a, "b": b, **result.as_dict()})
    return results


def baseline_pairs(jobs: list[Job], baseline: int = 0) -> list[tuple[int, int]]:
    return [(baseline, j.number) for j in jobs if j.number != baseline]


def all_pairs(jobs: list[Job]) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(len(jobs)), 2))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def results_frame(jobs: list[Job]) -> Any:
    """One row per sample per job, with each varying and constant setting as a column
    (override keys as written, e.g. `model.responses`) and each metric as `score_<name>`.
    `model.model_id` and `task.name` are columns in every table, overridden or not, so
    `df.groupby("model.model_id")` works on any folder (a recipe or a default run too)."""
    import pandas as pd

    varying, constant = varying_and_constant(jobs)
    setting_keys = [*varying, *(k for k in constant if k not in varying)]
    metrics = sorted({m for job in jobs for m in job.metrics})
    rows = []
    for job in jobs:
        settings = {k: setting(job, k) for k in setting_keys}
        settings.setdefault("model.model_id", job.info.get("model_id"))
        settings.setdefault("task.name", job.info.get("task_name"))
        for r in job.records:
            usage = r["token_usage"]
            rows.append(
                {
                    "job": job.number,
                    "job_name": job.name,
                    **settings,
                    "id": r["id"],
                    "index": r["index"],
                    "status": r["status"],
                    "error_cause": r["cause"],
                    "error": _text(r.get("error")),
                    "input": _text(r.get("input")),
                    "target": _text(r.get("target")),
                    "answer": _text(r.get("answer")),
                    **{f"score_{m}": r["scores"].get(m) for m in metrics},
                    **{k: usage.get(k) for k in TOKEN_KEYS},
                    "cost_usd": r.get("cost_usd"),
                    "latency_s": r.get("latency_s"),
                    "deployment": _text(r.get("deployment")),
                    "sandbox": _text(r.get("sandbox")),
                    "group": _text(r.get("group")),
                    "config_hash": r.get("config_hash"),
                    "n_messages": len(r["messages"]),  # the transcripts: view.html
                }
            )
    frame = pd.DataFrame(rows)
    for key in setting_keys:
        if key in frame and key not in INFO_FIELDS:
            with contextlib.suppress(ValueError, TypeError):  # text values stay text
                frame[key] = pd.to_numeric(frame[key])
    for column in ("group", "deployment", "sandbox"):
        if column in frame and frame[column].isna().all():
            frame = frame.drop(columns=column)
    return frame


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _short(text: str | None, width: int = 32) -> str:
    text = "-" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def metric_cell(stat: dict[str, Any]) -> str:
    if stat.get("mean") is None:
        return "-"
    if stat.get("ci_low") is None:
        return _fmt(stat["mean"])
    return f"{stat['mean']:.3f} [{stat['ci_low']:.2f}, {stat['ci_high']:.2f}]"


def job_table(jobs: list[Job], stats: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    varying, _ = varying_and_constant(jobs)
    metrics = sorted({m for s in stats for m in s["metrics"]})
    nested = any(not job.name.isdigit() for job in jobs) and len(jobs) > 1
    not_run = any(s["counts"]["not_run"] for s in stats)  # a deadline or an interrupt
    header = [
        "job",
        *(["folder"] if nested else []),
        *varying,
        *(f"{m} (95% CI)" for m in metrics),
        "n",
        "errors",
        *(["not_run"] if not_run else []),
        "tokens",
        "cost_usd",
        "latency_s",
        "wall_s",
    ]
    rows = []
    for job, stat in zip(jobs, stats, strict=True):
        counts = stat["counts"]
        cost = stat["cost_usd"]
        rows.append(
            [
                str(job.number),
                *([job.name] if nested else []),
                *(_short(setting(job, k)) for k in varying),
                *(metric_cell(stat["metrics"].get(m, {})) for m in metrics),
                str(counts["total"]),
                str(counts["error"]),
                *([str(counts["not_run"])] if not_run else []),
                str(stat["tokens"]["total_tokens"]),
                f"{cost:.4g}" if cost is not None else "-",
                _fmt(stat["latency_s"]),
                _fmt(stat["wall_time_s"], 2),
            ]
        )
    return header, rows


def comparison_table(
    comparisons: list[dict[str, Any]],
) -> tuple[list[str], list[list[str]]]:
    header = ["A", "B", "metric", "pairs", "B - A", "95% CI", "p", "McNemar p", "verdict"]
    rows = []
    for c in comparisons:
        ci = (
            f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
            if c["ci_low"] is not None and c["ci_high"] is not None
            else "-"
        )
        mcnemar = c.get("mcnemar")
        rows.append(
            [
                str(c["a"]),
                str(c["b"]),
                c["metric"],
                str(c["n"]) + (f" (-{c['excluded']})" if c["excluded"] else ""),
                f"{c['diff']:+.3f}" if c["diff"] is not None else "-",
                ci,
                _fmt(c["p_value"], 3),
                _fmt(mcnemar["p_value"], 3) if mcnemar else "-",
                c["verdict"],
            ]
        )
    return header, rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])
