"""`hydragent report DIR`: compare the jobs of a run, a sweep, or a folder of them.

Prints a job table (the settings that vary; the constant ones once above it; each metric's
mean and 95% CI over scored samples; errors apart; tokens, cost, latency, wall time) and the
paired comparison of every job with the baseline job on their shared sample ids. Writes
results.parquet and results.csv (one row per sample per job), summary.json (a sweep's jobs and
paired comparisons), report.html and PNG plots into DIR, and names each file it wrote. The
table prints without the report extra; the files that need it are skipped with the install
line.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydragent.record import dumps
from hydragent.report.load import SWEEP_SUMMARY, Job, load_jobs, varying_and_constant
from hydragent.report.tables import (
    baseline_pairs,
    compare,
    comparison_table,
    format_table,
    job_stats,
    job_table,
    results_frame,
)

EXTRA_HINT = "pip install 'hydragent[report]'"

__all__ = ["Report", "load_jobs", "write_report"]


@dataclass
class Report:
    """What `write_report` produced: the text it prints and the files it wrote."""

    text: str
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [self.text, ""]
        lines += [f"wrote {path}" for path in self.files]
        lines += [f"skipped {note}" for note in self.skipped]
        return "\n".join(lines)


def _constant_line(constant: dict[str, str]) -> str:
    return "constant: " + ("  ".join(f"{k}={v}" for k, v in constant.items()) or "-")


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(
    folder: Path,
    constant: dict[str, str],
    jobs_table: tuple[list[str], list[list[str]]],
    pairs_table: tuple[list[str], list[list[str]]] | None,
    baseline: int,
    images: list[str],
) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>hydragent report</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:"
        "collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left;font-size:13px}th{background:#f3f3f3}img{max-width:100%}</style>",
        "</head><body><h1>hydragent report</h1>",
        f"<p>{html.escape(str(folder.resolve()))}</p>",
        f"<p><b>{html.escape(_constant_line(constant))}</b></p>",
        "<h2>Jobs</h2><p>Metrics: mean and 95% CI over scored samples. Errored samples are "
        "counted apart (errors), never scored as wrong.</p>",
        _html_table(*jobs_table),
    ]
    if pairs_table is not None:
        parts += [
            f"<h2>Paired comparisons with job {baseline}</h2><p>B - A on the samples both "
            "jobs scored (pairs excluded for errors in brackets); paired t interval, "
            "cluster-robust when samples have groups; McNemar for 0/1 scores.</p>",
            _html_table(*pairs_table),
        ]
    parts += [f"<p><img src='{name}' alt='{name}'></p>" for name in images]
    parts.append(
        "<p>Every sample and transcript: <code>hydragent view "
        f"{html.escape(str(folder))}</code> (view.html). Flat table: results.parquet, "
        "results.csv.</p></body></html>\n"
    )
    return "".join(parts)


def _sweep_summary(
    jobs: list[Job], stats: list[dict[str, Any]], baseline: int, comparisons: list[dict[str, Any]]
) -> dict[str, Any]:
    """The folder's own summary.json: each job's figures, and every job paired with the
    baseline on their shared samples (the comparisons the report prints)."""
    from hydragent.limits.report import sweep_limits

    return {
        "kind": SWEEP_SUMMARY,
        "jobs": [
            {"job": job.number, "folder": str(job.folder), "overrides": job.overrides, **stat}
            for job, stat in zip(jobs, stats, strict=True)
        ],
        "baseline": baseline,
        "comparisons": comparisons,
        "limits": sweep_limits([stat.get("limits") for stat in stats]),
    }


def write_report(path: Path | str, baseline: int = 0, group_by: str = "group") -> Report:
    """Write the report files into `path` and return what to print. Samples are clustered
    in the paired comparisons by the record field `group_by`, when records have it."""
    folder = Path(path)
    jobs: list[Job] = load_jobs(folder, group_by)
    if not 0 <= baseline < len(jobs):
        raise ValueError(f"--baseline {baseline}: the folder has jobs 0 to {len(jobs) - 1}")
    stats = [job_stats(job) for job in jobs]
    _, constant = varying_and_constant(jobs)
    header, rows = job_table(jobs, stats)
    sections = [_constant_line(constant), format_table(header, rows)]
    from hydragent.limits.report import sweep_limits, sweep_line

    if (limits := sweep_limits([stat.get("limits") for stat in stats])) is not None:
        sections.append(sweep_line(limits))
    report = Report(text="")
    comparisons: list[dict[str, Any]] = []
    pairs_table = None
    if len(jobs) > 1:
        try:
            comparisons = compare(jobs, baseline_pairs(jobs, baseline))
        except ImportError:
            report.skipped.append(f"paired comparisons (need scipy, statsmodels: {EXTRA_HINT})")
        if comparisons:
            pairs_table = comparison_table(comparisons)
            sections += [
                f"\npaired with job {baseline} (B - A on shared, scored samples):",
                format_table(*pairs_table),
            ]
    if not (folder / "samples.jsonl").exists():  # a job folder's summary.json is the run's
        out = folder / "summary.json"
        out.write_text(dumps(_sweep_summary(jobs, stats, baseline, comparisons), indent=1))
        report.files.append(out)
    report.text = "\n".join(sections)
    try:
        frame = results_frame(jobs)
        frame.to_parquet(folder / "results.parquet", index=False)
        frame.to_csv(folder / "results.csv", index=False)
        report.files += [folder / "results.parquet", folder / "results.csv"]
    except ImportError:
        need = f"need pandas, pyarrow: {EXTRA_HINT}"
        report.skipped.append(f"results.parquet and results.csv ({need})")
    images: list[str] = []
    try:
        from hydragent.report.plots import job_labels, plot_scores, plot_usage

        labels = job_labels(jobs)
        for plot, name in ((plot_scores, "scores.png"), (plot_usage, "cost.png")):
            report.files.append(plot(jobs, stats, labels, folder / name))
            images.append(name)
    except ImportError:
        report.skipped.append(f"scores.png and cost.png (need matplotlib: {EXTRA_HINT})")
    page = _page(folder, constant, (header, rows), pairs_table, baseline, images)
    (folder / "report.html").write_text(page)
    report.files.append(folder / "report.html")
    return report
