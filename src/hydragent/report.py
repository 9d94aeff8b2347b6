"""`hydragent report DIR`: compare the jobs of a run or sweep folder.

One row per job, indexed by the override values that differ between jobs, with each metric's
mean ± stderr, counts, tokens, latency and wall time. Writes report.html and PNG plots.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from hydragent.runner.records import SUMMARY_FILE


def find_jobs(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Each job folder under `folder` (itself, for a single run) with its summary."""
    if not folder.is_dir():
        raise FileNotFoundError(f"report: {folder} is not a folder")
    files = (
        [folder / SUMMARY_FILE]
        if (folder / SUMMARY_FILE).exists()
        else [p for p in folder.rglob(SUMMARY_FILE) if ".hydra" not in p.parts]
    )
    if not files:
        raise FileNotFoundError(
            f"report: no {SUMMARY_FILE} in {folder} or below; pass a run or sweep folder"
        )

    def order(path: Path) -> tuple[int, str]:
        name = path.parent.name
        return (int(name), "") if name.isdigit() else (1 << 30, str(path))

    return [(p.parent, json.loads(p.read_text())) for p in sorted(files, key=order)]


def _override_map(overrides: list[str]) -> dict[str, str]:
    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep:
            pairs[key.lstrip("+~")] = value
    return pairs


def comparison_rows(
    jobs: list[tuple[Path, dict[str, Any]]],
) -> tuple[list[str], list[list[str]], int]:
    """The table header and rows, and how many leading columns index the jobs."""
    maps = [_override_map(summary.get("overrides", [])) for _, summary in jobs]
    keys = sorted({k for m in maps for k in m})
    differing = [k for k in keys if len({m.get(k) for m in maps}) > 1] if len(jobs) > 1 else []
    metrics = sorted({name for _, s in jobs for name in s.get("metrics", {})})
    index = differing or ["job"]
    header = [*index, *metrics, "n", "errors", "tokens", "latency_s", "wall_s"]
    rows = []
    for (folder, summary), overrides in zip(jobs, maps, strict=True):
        label = [overrides.get(k, "-") for k in differing] or [
            " ".join(summary.get("overrides", [])) or folder.name
        ]
        cells = []
        for name in metrics:
            stat = summary.get("metrics", {}).get(name)
            cells.append(f"{stat['mean']:.3f} ± {stat['stderr']:.3f}" if stat else "-")
        counts = summary.get("counts", {})
        latency = summary.get("latency_s", {}).get("mean")
        rows.append(
            [
                *label,
                *cells,
                str(counts.get("total", 0)),
                str(counts.get("error", 0)),
                str(summary.get("token_usage", {}).get("total_tokens", 0)),
                f"{latency:.3f}" if isinstance(latency, int | float) else "-",
                f"{summary.get('wall_time_s', 0):.2f}",
            ]
        )
    return header, rows, len(index)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join(
        [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    ).rstrip()


def _plot(jobs: list[tuple[Path, dict[str, Any]]], labels: list[str], folder: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "hydragent report needs the `report` extra: pip install 'hydragent[report]'"
        ) from None
    written = []
    metrics = sorted({name for _, s in jobs for name in s.get("metrics", {})})
    if metrics:
        figure, axes = plt.subplots(figsize=(max(5, 1.6 * len(jobs) * len(metrics)), 4))
        width = 0.8 / len(metrics)
        for m, name in enumerate(metrics):
            stats = [s.get("metrics", {}).get(name, {}) for _, s in jobs]
            axes.bar(
                [i + m * width for i in range(len(jobs))],
                [st.get("mean", 0) for st in stats],
                width,
                yerr=[st.get("stderr", 0) for st in stats],
                capsize=4,
                label=name,
            )
        axes.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(jobs))], labels)
        axes.set_ylabel("score (mean ± stderr)")
        axes.set_ylim(0, 1.05)
        axes.legend()
        figure.tight_layout()
        figure.savefig(folder / "scores.png", dpi=100)
        plt.close(figure)
        written.append("scores.png")
    figure, (tokens, latency) = plt.subplots(1, 2, figsize=(max(8, 2 * len(jobs)), 4))
    tokens.bar(labels, [s.get("token_usage", {}).get("total_tokens", 0) for _, s in jobs])
    tokens.set_title("tokens")
    latency.bar(
        labels,
        [s.get("latency_s", {}).get("mean", 0) or 0 for _, s in jobs],
        yerr=[s.get("latency_s", {}).get("stderr", 0) or 0 for _, s in jobs],
        capsize=4,
    )
    latency.set_title("latency per sample (s)")
    figure.tight_layout()
    figure.savefig(folder / "cost.png", dpi=100)
    plt.close(figure)
    written.append("cost.png")
    return written


def write_report(path: Path) -> str:
    """Write report.html and PNG plots into `path`; return the comparison table text."""
    folder = Path(path)
    jobs = find_jobs(folder)
    header, rows, index_width = comparison_rows(jobs)
    table = format_table(header, rows)
    labels = [" ".join(row[:index_width])[:40] for row in rows]
    images = _plot(jobs, labels, folder)
    cells = lambda tag, row: "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)  # noqa: E731
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hydragent report</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>"
        f"<h1>hydragent report</h1><p>{html.escape(str(folder.resolve()))}</p>"
        f"<table><tr>{cells('th', header)}</tr>"
        + "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
        + "</table>"
        + "".join(f"<p><img src='{name}' alt='{name}'></p>" for name in images)
        + "</body></html>\n"
    )
    (folder / "report.html").write_text(page)
    return table
