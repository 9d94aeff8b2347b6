"""summary.json and the results table: metrics over scored samples, errors counted apart.

An errored sample has no score (its `scores` is {}): averaging it in as 0 would mix "the
model was wrong" with "the key was missing". Metrics are over the scored samples, and the
errors are counted beside them with their causes (runner/errors.py).
"""

from __future__ import annotations

import math
from typing import Any

from hydragent.runner.errors import error_causes
from hydragent.stats import mean_ci

USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cached_tokens")


def _total_usage(records: list[dict[str, Any]], field: str) -> dict[str, int]:
    usage = dict.fromkeys(USAGE_KEYS[:3], 0)
    for record in records:
        for key, value in (record.get(field) or {}).items():
            if key in USAGE_KEYS and isinstance(value, int | float):
                usage[key] = usage.get(key, 0) + int(value)
    return usage


def summarise(records: list[dict[str, Any]], not_run: int = 0, **extra: Any) -> dict[str, Any]:
    """The summary of a job's results (one record per sample, in dataset order)."""
    scored = [r for r in records if r.get("status") == "ok"]
    names = sorted({name for r in scored for name in r.get("scores") or {}})
    costs = [r["cost_usd"] for r in records if isinstance(r.get("cost_usd"), int | float)]
    failed = len(records) - len(scored)
    return {
        "metrics": {
            name: mean_ci([float(r["scores"][name]) for r in scored if name in r["scores"]])
            for name in names
        },
        "counts": {
            "total": len(records) + not_run,
            "ok": len(scored),
            "error": failed,
            "not_run": not_run,
        },
        "errors": error_causes(records),
        "token_usage": _total_usage(records, "token_usage"),
        "judge_token_usage": _total_usage(records, "judge_token_usage"),
        "cost_usd": round(sum(costs), 6) if costs else None,
        "latency_s": latency_summary([float(r.get("latency_s") or 0.0) for r in records]),
        **extra,
    }


def latency_summary(latencies: list[float]) -> dict[str, Any]:
    """Seconds per sample: the mean and the quantiles a user reads latency by (the median,
    the 90th percentile, the slowest). Not a confidence interval: latency is no metric, and a
    t interval would make every run import scipy (docs/benchmarks.md, P1-scale)."""
    if not latencies:
        return {"mean": None, "p50": None, "p90": None, "max": None, "n": 0}
    ordered = sorted(latencies)

    def at(share: float) -> float:  # the nearest-rank quantile: a latency that was seen
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    return {
        "mean": round(math.fsum(ordered) / len(ordered), 4),
        "p50": at(0.5),
        "p90": at(0.9),
        "max": ordered[-1],
        "n": len(ordered),
    }


def _stat(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "-"
    if stat["ci_low"] is None:
        return f"{stat['mean']:.3f}"
    return (
        f"{stat['mean']:.3f} ± {stat['stderr']:.3f} [{stat['ci_low']:.2f}, {stat['ci_high']:.2f}]"
    )


def results_table(summary: dict[str, Any]) -> str:
    """Each metric over the scored samples, then the errors and unrun samples apart."""
    counts, usage = summary["counts"], summary["token_usage"]
    rows = [("metric", "mean ± stderr [95% CI]", "scored")]
    for name, stat in summary["metrics"].items():
        rows.append((name, _stat(stat), str(stat["n"])))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if counts["error"]:
        lines.append(f"errors: {counts['error']} of {counts['total']} samples (not scored)")
    if counts["not_run"]:
        lines.append(f"not run: {counts['not_run']} (rerun into the folder to finish them)")
    judged = summary.get("judge_token_usage", {}).get("total_tokens", 0)
    cost = summary.get("cost_usd")
    lines.append(
        f"samples {counts['total']} (ok {counts['ok']}, errors {counts['error']}, "
        f"not run {counts['not_run']}), tokens {usage['total_tokens']}"
        + (f" (judge {judged})" if judged else "")
        + (f", cost ${cost:.4f}" if cost is not None else "")
        + f", wall {summary['wall_time_s']:.2f}s"
    )
    return "\n".join(lines)
