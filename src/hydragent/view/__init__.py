"""`hydragent view DIR`: an offline page to browse a run, a sweep, or a folder of them.

`build_view` writes DIR/view.html: one file, with vanilla JS and CSS inline (no CDN, no
server), that opens from disk (file://). The page holds an index of every sample of every
job (ids, inputs, answers, scores, status, tokens, cost) and the paired comparisons; the
transcripts are loaded per job on first use. Small sweeps embed them in the page, as JSON
that is parsed only when asked for; large ones (over `embed_limit` bytes) put them in
DIR/view_files/tx-N.js, which the page loads with a script tag (file:// allows that, and
fetch() does not), so the page opens in well under a second even at 20 jobs x 2,000 samples
(benchmarks/view_bench.py). `serve` shows the same files on 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import posixpath
import shutil
import urllib.parse
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from hydragent.record import dumps
from hydragent.report.load import Job, load_jobs
from hydragent.report.tables import (
    CONFIDENCE,
    all_pairs,
    baseline_pairs,
    compare,
    job_stats,
    pooled_stats,
)
from hydragent.view.settings import job_settings

PAGE = "view.html"
FILES = "view_files"
EMBED_LIMIT = 8_000_000  # bytes of transcripts kept inside view.html
ALL_PAIRS_UP_TO = 40  # jobs; above it, each job is compared with job 0 only
# Characters kept in the index, which search reads (the sample page shows everything): inputs
# are stored once per sample, answers once per job, so answers get the smaller share.
INPUT_LIMIT = 4000
ANSWER_LIMIT = 2000

# Record fields the index carries; everything else goes to the per-job transcript data.
INDEXED = {"id", "index", "input", "target", "answer", "scores", "status", "cause"}


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _script_json(data: Any) -> str:
    """Strict JSON (hydragent.record.dumps: no NaN, no lone surrogate) safe inside a <script>
    element: no `</script>` or `<!--` can appear."""
    return dumps(data, separators=(",", ":")).replace("<", "\\u003c")


def _sample_table(jobs: list[Job]) -> tuple[dict[str, Any], dict[str, int]]:
    """Each distinct sample once (input and target are the same in every job)."""
    table: dict[str, list[Any]] = {"id": [], "index": [], "input": [], "target": [], "group": []}
    position: dict[str, int] = {}
    for job in jobs:
        for r in job.records:
            if r["id"] in position:
                continue
            position[r["id"]] = len(table["id"])
            table["id"].append(r["id"])
            table["index"].append(r["index"])
            table["input"].append(_clip(r.get("input"), INPUT_LIMIT))
            table["target"].append(_clip(r.get("target"), 1000))
            table["group"].append(_clip(r.get("group"), 200))
    return table, position


def _row(record: dict[str, Any], position: dict[str, int]) -> dict[str, Any]:
    usage = record["token_usage"]
    row = {
        "s": position[record["id"]],
        "ok": record["status"] == "ok",
        "sc": record["scores"],
        "a": _clip(record.get("answer"), ANSWER_LIMIT),
        "tk": usage.get("total_tokens"),
        "l": record.get("latency_s"),
        "$": record.get("cost_usd"),
    }
    if record["cause"]:
        row["c"] = record["cause"]
    return {k: v for k, v in row.items() if v is not None}


def _detail(record: dict[str, Any]) -> dict[str, Any]:
    """What the sample page shows beyond the index: transcript, usage, error, deployment."""
    detail = {k: v for k, v in record.items() if k not in INDEXED and v is not None}
    detail["answer"] = record.get("answer")  # the index clips long answers
    return detail


def view_data(jobs: list[Job], root: Path) -> tuple[dict[str, Any], list[str]]:
    """The page's index and, per job, its transcripts as a JSON text."""
    described = job_settings(jobs)
    varying, constant = described["varying"], described["constant"]
    samples, position = _sample_table(jobs)
    pairs = all_pairs(jobs) if len(jobs) <= ALL_PAIRS_UP_TO else baseline_pairs(jobs)
    try:
        comparisons = compare(jobs, pairs)
    except ImportError:  # no scipy/statsmodels: the page says so
        comparisons = None
    index = {
        "root": str(root.resolve()),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "confidence": CONFIDENCE,
        "varying": varying,
        "constant": constant,
        "usual": described["usual"],
        "metrics": sorted({m for job in jobs for m in job.metrics}),
        "jobs": [
            {
                "n": job.number,
                "name": job.name,
                "settings": described["settings"][job.number],
                "apart": described["apart"][job.number],
                "overrides": job.overrides,
                "info": job.info,
                "stats": job_stats(job),
                "unreadable": job.unreadable,
                # The runner's causes with their fixes ([{cause, count, example_id, fix}]).
                "causes": job.summary.get("errors")
                if isinstance(job.summary.get("errors"), list)
                else [],
            }
            for job in jobs
        ],
        "samples": samples,
        "rows": [[_row(r, position) for r in job.records] for job in jobs],
        "pairs": comparisons,
        "all_pairs": len(jobs) <= ALL_PAIRS_UP_TO,
        # "pool over <key>": each row's metrics computed here, by the one CI of hydragent.stats
        "pooled": {key: pooled_stats(jobs, varying, key, described["settings"]) for key in varying},
    }
    transcripts = [_script_json({r["id"]: _detail(r) for r in job.records}) for job in jobs]
    return index, transcripts


def _asset(name: str) -> str:
    return resources.files("hydragent.view").joinpath("assets", name).read_text()


def build_view(root: Path | str, embed_limit: int = EMBED_LIMIT, group_by: str = "group") -> Path:
    """Write view.html (and view_files/ when the transcripts are large) into `root`."""
    root = Path(root)
    jobs = load_jobs(root, group_by)
    index, transcripts = view_data(jobs, root)
    embed = sum(len(t) for t in transcripts) <= embed_limit
    files = root / FILES
    if files.exists():
        shutil.rmtree(files)
    blocks = []
    if embed:
        blocks = [
            f'<script type="application/json" id="tx-{n}">{text}</script>'
            for n, text in enumerate(transcripts)
        ]
    else:
        files.mkdir()
        for n, text in enumerate(transcripts):
            # A JS string literal holding the JSON: parsed with JSON.parse, faster than a literal.
            (files / f"tx-{n}.js").write_text(f"HV_TX({n},{json.dumps(text)});\n")
    page = (
        _asset("page.html")
        .replace("/*STYLE*/", _asset("style.css"))
        .replace("/*APP*/", _asset("app.js"))
        .replace("/*INDEX*/", _script_json(index))
        .replace("<!--TRANSCRIPTS-->", "\n".join(blocks))
    )
    out = root / PAGE
    out.write_text(page)
    return out


def servable(request_path: str) -> str | None:
    """The URL path to serve for `request_path`, or None: only view.html and the plain files
    directly inside view_files/. The path is percent-decoded and normalised *before* the
    check (`/view_files/../0/.hydra/config.yaml`, `%2e%2e` and `//` all resolve first), and
    the answer is built from the two allowed shapes, never from the request's own text."""
    path = posixpath.normpath(urllib.parse.unquote(request_path.split("?", 1)[0].split("#")[0]))
    if path in ("/", ".", "//", "/" + PAGE):
        return "/" + PAGE
    folder, name = posixpath.split(path)
    if folder == "/" + FILES and name not in ("", ".", "..") and "\\" not in name:
        return f"/{FILES}/{name}"
    return None


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves view.html and view_files/ only: nothing else of the run folder."""

    def do_GET(self) -> None:
        if self._allow():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._allow():
            super().do_HEAD()

    def _allow(self) -> bool:
        path = servable(self.path)
        if path is None or not self._plain(path):
            self.send_error(404, "only the viewer is served")
            return False
        self.path = path
        return True

    def _plain(self, path: str) -> bool:
        """No link anywhere on the way: a symlink planted in view_files/ (or as view.html)
        would otherwise serve whatever it points to."""
        root = os.path.realpath(self.directory)
        return os.path.realpath(self.translate_path(path)) == os.path.join(root, path.lstrip("/"))

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404, "only the viewer is served")  # never a folder listing
        return None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the terminal shows the address only


def make_server(root: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the viewer on 127.0.0.1 (port 0 picks a free one)."""
    handler = functools.partial(_Handler, directory=str(root))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
