"""PNG plots that stay readable from 1 job to 100: jobs run down the y axis (their labels
wrapped beside it, the figure growing with the number of jobs), one panel per metric with
each job's 95% CI, and errored samples in a panel of their own, never mixed into scores."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from hydragent.report.load import Job, setting, varying_and_constant

ERROR_COLOUR = "#c0392b"
SCORE_COLOUR = "#2e6da4"


def job_labels(jobs: list[Job], width: int = 36, lines: int = 3) -> list[str]:
    """`#n key=value ...` with only the settings that differ, wrapped to `width`."""
    varying, _ = varying_and_constant(jobs)
    labels = []
    for job in jobs:
        text = " ".join(f"{k}={setting(job, k)}" for k in varying) or job.label
        wrapped = textwrap.wrap(f"#{job.number} {text}", width) or [f"#{job.number}"]
        if len(wrapped) > lines:
            wrapped = [*wrapped[: lines - 1], wrapped[lines - 1][: width - 1] + "…"]
        labels.append("\n".join(wrapped))
    return labels


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(plt: Any, jobs: int, panels: int, label_lines: int) -> tuple[Any, Any]:
    row = 0.22 + 0.14 * label_lines
    height = min(2.0 + row * jobs, 120.0)
    figure, axes = plt.subplots(
        1, panels, figsize=(3.6 + 3.0 * panels, height), sharey=True, squeeze=False
    )
    return figure, axes[0]


def _jobs_axis(axis: Any, labels: list[str], size: float) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_yticks(range(len(labels)), labels, fontsize=size)
    axis.set_ylim(len(labels) - 0.5, -0.5)  # job 0 on top, as in the table
    axis.grid(axis="x", alpha=0.3)
    axis.xaxis.set_major_locator(MaxNLocator(5))  # narrow panels: tick labels never overlap
    if len(labels) > 25:  # a tall figure: the value scale at the top too
        axis.tick_params(axis="x", top=True, labeltop=True)


def plot_scores(
    jobs: list[Job], stats: list[dict[str, Any]], labels: list[str], path: Path
) -> Path:
    """scores.png: mean and 95% CI per metric; error share drawn apart, in red."""
    plt = _pyplot()
    metrics = sorted({m for s in stats for m in s["metrics"]})
    line_count = max(label.count("\n") + 1 for label in labels)
    figure, axes = _figure(plt, len(jobs), len(metrics) + 1, line_count)
    size = 9 if len(jobs) <= 30 else 7
    positions = list(range(len(jobs)))
    for axis, metric in zip(axes, metrics, strict=False):
        points = [s["metrics"].get(metric, {}) for s in stats]
        for y, p in zip(positions, points, strict=True):
            if p.get("mean") is None:
                continue
            low, high = p.get("ci_low"), p.get("ci_high")
            error = [[p["mean"] - low], [high - p["mean"]]] if low is not None else None
            axis.errorbar(p["mean"], y, xerr=error, fmt="o", color=SCORE_COLOUR, capsize=3)
        axis.set_title(f"{metric}: mean and 95% CI\n(scored samples only)", fontsize=10)
        axis.set_xlabel(f"{metric} score")
        values = [v for p in points for v in (p.get("ci_low"), p.get("ci_high"), p.get("mean"))]
        values = [v for v in values if v is not None]
        if values and min(values) >= -0.05 and max(values) <= 1.05:
            axis.set_xlim(-0.05, 1.05)
        _jobs_axis(axis, labels, size)
    errors = axes[-1]
    shares = [
        s["counts"]["error"] / s["counts"]["total"] if s["counts"]["total"] else 0 for s in stats
    ]
    errors.barh(positions, shares, color=ERROR_COLOUR, height=0.6)
    for y, s in zip(positions, stats, strict=True):
        if s["counts"]["error"]:
            errors.annotate(
                f" {s['counts']['error']}/{s['counts']['total']}",
                (shares[y], y),
                va="center",
                fontsize=size,
            )
    errors.set_xlim(0, 1.15)
    errors.set_title("errored samples\n(not scored, not counted as wrong)", fontsize=10)
    errors.set_xlabel("share of samples that errored")
    _jobs_axis(errors, labels, size)
    axes[0].set_ylabel("job")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_usage(jobs: list[Job], stats: list[dict[str, Any]], labels: list[str], path: Path) -> Path:
    """cost.png: tokens, dollars and mean latency per job."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    line_count = max(label.count("\n") + 1 for label in labels)
    figure, (tokens, dollars, latency) = _figure(plt, len(jobs), 3, line_count)
    size = 9 if len(jobs) <= 30 else 7
    positions = list(range(len(jobs)))
    tokens.barh(positions, [s["tokens"]["total_tokens"] for s in stats], height=0.6)
    tokens.set_xlabel("total tokens (input + output)")
    tokens.set_title("tokens", fontsize=10)
    cost_panel(dollars, [s["cost_usd"] for s in stats], size)
    latency.barh(positions, [s["latency_s"] or 0 for s in stats], height=0.6, color="#8e44ad")
    latency.set_xlabel("mean latency per sample (s)")
    latency.set_title("latency", fontsize=10)
    for axis in (tokens, dollars, latency):
        _jobs_axis(axis, labels, size)
    if any(s["cost_usd"] is not None for s in stats):
        dollars.xaxis.set_major_locator(MaxNLocator(3, steps=[1, 2, 5, 10]))  # "$0.00025"
    tokens.set_ylabel("job")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def cost_panel(axis: Any, costs: list[float | None], size: float) -> None:
    """Dollars per job from 0 up; a job with no known price says so. With no price at all,
    the panel says "no prices known" and how to give one, instead of empty bars on an axis
    that matplotlib centres on 0 ("$-0.05")."""
    from matplotlib.ticker import FuncFormatter

    axis.set_title("cost", fontsize=10)
    axis.set_xlabel("cost (USD)")
    if all(cost is None for cost in costs):
        axis.set_xticks([])
        axis.text(
            0.5, 0.5, "no prices known\n(set pricing.input_per_mtok\nand output_per_mtok)",
            transform=axis.transAxes, ha="center", va="center", fontsize=size, color="grey",
        )  # fmt: skip
        return
    axis.barh(range(len(costs)), [c or 0 for c in costs], height=0.6, color="#27ae60")
    for y, cost in enumerate(costs):
        if cost is None:
            axis.annotate(" price unknown", (0, y), va="center", fontsize=size, color="grey")
    axis.set_xlim(left=0)
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:.2g}"))
