"""The viewer at 20 jobs x 2,000 samples, in a real browser (Debian's chromium via Playwright).

Measures: building view.html (Python), page load until the job table is drawn, opening a job's
2,000 samples, each filter (search, status, error cause, score), opening a transcript (its
job's side file loaded on first use), comparing two jobs (flips sorted first), pooling seeds.
Times are medians over --repeat runs, in milliseconds, measured inside the page from the
event to the next drawn frame. The same page with every transcript embedded is loaded too,
for the record of why large sweeps use side files.

Run: python benchmarks/view_bench.py [--jobs 20] [--samples 2000] [--repeat 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from view_sweep import write_sweep

from hydragent.view import build_view

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Runs `action` (JS statements) and resolves after the next painted frame: input to pixels.
TIMED = """async (action) => {
  const t0 = performance.now();
  (new Function(action))();
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""

# True once the page shows sample `id` with its transcript drawn.
SHOWN = """(id) => document.querySelector('.crumbs')?.textContent.endsWith(id)
  && document.querySelector('#transcript .msg') !== null"""


def _set(selector: str, value: str, event: str) -> str:
    return (
        f"const e = document.querySelector({json.dumps(selector)}); e.value = {json.dumps(value)};"
        f" e.dispatchEvent(new Event({json.dumps(event)}));"
    )


def _load(browser: Any, url: str) -> tuple[float, list[float], Any]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-ready]")
    wall = (time.perf_counter() - started) * 1000
    # ms since navigation start: the app's first line ran, and the job table was drawn
    marks = page.evaluate(
        "['hv-start', 'hv-ready'].map(n => performance.getEntriesByName(n)[0].startTime)"
    )
    return wall, marks, page


def measure(root: Path, repeat: int, jobs: int, samples: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    url = (root / "view.html").as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        heap = None
        for _ in range(repeat):
            wall, (start, ready), page = _load(browser, url)
            add("page load to job table (wall, from Python)", wall)
            add("navigation start to app start (HTML parsed)", start)
            add("navigation start to job table drawn", ready)
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")

            def timed(action: str, page: Any = page) -> float:
                return page.evaluate(TIMED, action)

            add("pool seeds in the job table", timed(_set("#pool", "seed", "change")))
            add("open a job (2,000 samples)", timed("location.hash = '#/job/1'"))
            add("search inputs and answers", timed(_set("#sample-search", "times 7", "input")))
            timed(_set("#sample-search", "", "input"))
            add("filter status = error", timed(_set("#status-filter", "error", "change")))
            add("filter error cause", timed(_set("#cause-filter", "RateLimitError", "change")))
            timed(_set("#status-filter", "", "change"))
            timed(_set("#cause-filter", "", "change"))
            timed(_set("#metric-filter", "exact", "change"))
            add("filter score = 0", timed(_set("#score-filter", "0", "change")))
            job, sample = min(7, jobs - 1), samples // 2  # a job whose transcripts are unread
            for number, name in (
                (sample, "open a transcript (first of its job)"),
                (sample + 1, "open a transcript (job loaded)"),
            ):
                started = time.perf_counter()
                page.evaluate(f"location.hash = '#/job/{job}/sample/arith-{number:05d}'")
                page.wait_for_function(SHOWN, arg=f"arith-{number:05d}")
                add(name, (time.perf_counter() - started) * 1000)
            add("compare two jobs (flips first)", timed("location.hash = '#/compare/0/2'"))
            add("compare: flips only", timed("document.querySelector('#flips-only').click()"))
            page.close()
        browser.close()
    summary = {name: round(statistics.median(values), 1) for name, values in results.items()}
    return {"ms": summary, "js_heap_mb": round(heap / 2**20, 1) if heap else None}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--jobs", type=int, default=20)
    cli.add_argument("--samples", type=int, default=2000)
    cli.add_argument("--repeat", type=int, default=5)
    cli.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "view.json")
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_sweep(root, args.jobs, args.samples)
        records_mb = sum(p.stat().st_size for p in root.rglob("samples.jsonl")) / 2**20
        started = time.perf_counter()
        build_view(root, embed_limit=0)  # side files whatever the size (the default at 20 x 2,000)
        build_s = time.perf_counter() - started
        page_mb = (root / "view.html").stat().st_size / 2**20
        side_mb = sum(p.stat().st_size for p in (root / "view_files").iterdir()) / 2**20
        side = measure(root, args.repeat, args.jobs, args.samples)
        build_view(root, embed_limit=10**12)
        embedded_mb = (root / "view.html").stat().st_size / 2**20
        embedded = measure(root, max(1, args.repeat // 2), args.jobs, args.samples)
    record = {
        "jobs": args.jobs,
        "samples": args.samples,
        "records_mb": round(records_mb, 1),
        "build_view_s": round(build_s, 2),
        "view_html_mb": round(page_mb, 1),
        "view_files_mb": round(side_mb, 1),
        "side_files": side,
        "embedded_html_mb": round(embedded_mb, 1),
        "embedded": embedded,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"| step ({args.jobs} jobs x {args.samples} samples) | side files (ms) | embedded (ms) |")
    print("|---|---:|---:|")
    for name, value in side["ms"].items():
        print(f"| {name} | {value} | {embedded['ms'].get(name, '-')} |")
    print(
        f"build_view {build_s:.2f} s; view.html {page_mb:.1f} MB + view_files {side_mb:.1f} MB"
        f" (embedded: {embedded_mb:.1f} MB); JS heap {side['js_heap_mb']} MB; records"
        f" {records_mb:.1f} MB; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
