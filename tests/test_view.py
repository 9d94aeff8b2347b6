"""`hydragent view DIR` without a browser: the command, and what the page is given."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from benchmarks.view_sweep import write_sweep
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydragent.report.load import load_jobs
from hydragent.view import build_view, make_server, view_data
from test_runner_support import run_cli


def test_the_command_writes_one_offline_page_and_says_where(tmp_path: Path) -> None:
    write_sweep(tmp_path, jobs=2, samples=5)
    result = run_cli("view", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = tmp_path / "view.html"
    assert f"wrote {page}" in result.stdout and page.as_uri() in result.stdout
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # no CDN, nothing remote
    assert run_cli("view", str(tmp_path / "missing"), cwd=tmp_path).returncode == 2
    (tmp_path / "empty").mkdir()
    empty = run_cli("view", str(tmp_path / "empty"), cwd=tmp_path)
    assert empty.returncode == 1 and "no summary.json or samples.jsonl" in empty.stderr


def test_the_index_is_light_and_transcripts_come_per_job(tmp_path: Path) -> None:
    write_sweep(tmp_path, jobs=3, samples=10)
    index, transcripts = view_data(load_jobs(tmp_path), tmp_path)
    assert index["varying"] == ["model.model_id", "seed"]
    constant = {"model": "litellm", "task": "arithmetic", "backend": "LiteLLMModel"}
    assert index["constant"] == constant
    assert len(index["samples"]["id"]) == 10  # each input once, not once per job
    assert "messages" not in json.dumps(index["rows"])
    errored = [row for row in index["rows"][1] if not row["ok"]]
    assert errored and all(row["c"] in {"RateLimitError", "TimeoutError"} for row in errored)
    assert all(row["sc"] == {} for row in errored)
    assert {(p["a"], p["b"]) for p in index["pairs"]} == {(0, 1), (0, 2), (1, 2)}
    detail = json.loads(transcripts[0])["arith-00000"]
    assert detail["messages"][0]["role"] == "system" and "token_usage" in detail


def test_rebuilding_a_smaller_page_removes_stale_side_files(tmp_path: Path) -> None:
    write_sweep(tmp_path, jobs=2, samples=5)
    build_view(tmp_path, embed_limit=0)
    assert (tmp_path / "view_files" / "tx-1.js").exists()
    build_view(tmp_path)
    assert not (tmp_path / "view_files").exists()
    assert 'id="tx-1"' in (tmp_path / "view.html").read_text()


def test_serve_shows_the_page_on_loopback_only(tmp_path: Path) -> None:
    write_sweep(tmp_path, jobs=1, samples=3)
    server = subprocess.Popen(
        [sys.executable, "-m", "hydragent.cli", "view", str(tmp_path), "--serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = next(line for line in server.stdout if line.startswith("serving on"))
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url, timeout=10) as page:
            assert "<title>hydragent view</title>" in page.read().decode()
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url + "0/samples.jsonl", timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    write_sweep(tmp_path, jobs=2, samples=3)
    build_view(tmp_path, embed_limit=0)  # side files in view_files/
    server = make_server(tmp_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_serve_refuses_paths_that_climb_out_of_view_files(served: tuple[Path, int]) -> None:
    root, port = served
    for path in (
        "/view_files/../0/.hydra/config.yaml",
        "/view_files/%2e%2e/0/.hydra/config.yaml",
        "/view_files/%2E%2E%2F0%2Fsamples.jsonl",
        "/view_files/..%2f0/summary.json",
        "//0/summary.json",
        "/./0/summary.json",
        "/view_files/",
        "/view_files",
        "/0/",
    ):
        for method in ("GET", "HEAD"):
            status, _ = _get(port, path, method)
            assert status == 404, (method, path)
    assert _get(port, "/")[0] == 200
    status, body = _get(port, "/view_files/tx-1.js")
    assert status == 200 and body == (root / "view_files" / "tx-1.js").read_bytes()


def test_serve_refuses_a_link_planted_in_view_files(served: tuple[Path, int]) -> None:
    """A symlink inside view_files/ (to a run's config, or anywhere on the host) is not served:
    only plain files that really live there are."""
    root, port = served
    secret = root / "0" / ".hydra" / "config.yaml"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("api_key: not-for-the-browser\n")
    (root / "view_files" / "linked.js").symlink_to(secret)
    (root / "view_files" / "passwd").symlink_to("/etc/passwd")
    for path in ("/view_files/linked.js", "/view_files/passwd"):
        status, body = _get(port, path)
        assert status == 404 and b"not-for-the-browser" not in body and b"root:" not in body
    assert _get(port, "/view_files/tx-1.js")[0] == 200


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(
        st.sampled_from(["..", ".", "%2e%2e", "%2E.", "view_files", "view.html", "0", ".hydra",
                         "config.yaml", "samples.jsonl", "tx-0.js", "", "%2f", "%2F"]),
        max_size=6,
    )
)  # fmt: skip
def test_whatever_the_path_only_viewer_files_come_back(
    served: tuple[Path, int], parts: list[str]
) -> None:
    root, port = served
    allowed = {(root / "view.html").read_bytes()}
    allowed |= {f.read_bytes() for f in (root / "view_files").iterdir()}
    status, body = _get(port, "/" + "/".join(parts))
    assert status == 404 or (status == 200 and body in allowed)


def test_pooling_over_seeds_uses_the_one_bounded_interval(tmp_path: Path) -> None:
    """Issue 21: "pool over seed" showed 0.946 [0.87, 1.02] for a 0/1 metric (a t interval in
    the page's JS). The pooled rows now come with `hydragent.stats.mean_ci`'s interval."""
    from hydragent.stats import mean_ci

    write_sweep(tmp_path, jobs=4, samples=30)
    jobs = load_jobs(tmp_path)
    index, _ = view_data(jobs, tmp_path)
    rows = index["pooled"]["seed"]
    assert sorted(len(r["members"]) for r in rows) == [2, 2]
    for row in rows:
        per_sample: dict[str, list[float]] = {}
        for n in row["members"]:
            for r in jobs[n].records:
                if r["status"] == "ok" and "exact" in r["scores"]:
                    per_sample.setdefault(r["id"], []).append(r["scores"]["exact"])
        expected = mean_ci([sum(v) / len(v) for v in per_sample.values()])
        assert row["metrics"]["exact"] == expected
        assert 0.0 <= expected["ci_low"] <= expected["ci_high"] <= 1.0
    page = build_view(tmp_path).read_text()
    assert "T975" not in page and "D.pooled" in page  # no second CI formula in the page
