"""The viewer in a real browser (Debian's chromium, driven by Playwright), as a researcher uses it:
from a sweep's job table to a sample's transcript, filters by error, two jobs side by side."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchmarks.view_sweep import write_sweep

from hydragent.report.load import load_jobs
from hydragent.report.tables import compare
from hydragent.view import build_view, make_server

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra)")
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip("needs Debian's chromium: apt-get install -y chromium", allow_module_level=True)

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four jobs x 30 samples: two models, two seeds each; job 1 has errors of two causes."""
    root = tmp_path_factory.mktemp("sweep")
    write_sweep(root, jobs=4, samples=30)
    build_view(root)
    return root


class Viewer:
    """One page of the viewer, failing the test on any JavaScript error."""

    def __init__(self, browser: Any, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready]")
        self.clicks = 0

    def click(self, selector: str) -> None:
        self.page.click(selector)
        self.clicks += 1

    def rows(self) -> list[str]:
        return self.page.locator(".vbody .vrow").all_inner_texts()

    def close(self) -> None:
        self.page.close()
        assert self.errors == []


@pytest.fixture
def viewer(browser: Any, sweep: Path) -> Iterator[Viewer]:
    view = Viewer(browser, (sweep / "view.html").as_uri())
    yield view
    view.close()


def test_a_samples_full_transcript_is_two_clicks_from_the_sweep(viewer: Viewer) -> None:
    page = viewer.page
    assert page.locator("#jobs-table tbody tr").count() == 4
    assert page.locator("#constant").inner_text().count("task=arithmetic") == 1
    # no stray text between the settings and the toolbar (a left-out node once showed "null")
    assert "null" not in page.locator("#app").inner_text().split("Scores:")[0]
    viewer.click('#jobs-table tr[data-job="2"]')
    page.wait_for_selector(".vbody .vrow")
    viewer.click(".vbody .vrow >> nth=1")  # the second sample: a tool-calling transcript
    page.wait_for_selector("#transcript .msg")
    assert viewer.clicks == 2
    roles = page.locator("#transcript .msg").evaluate_all("ms => ms.map(m => m.dataset.role)")
    assert roles == ["system", "user", "tool-call", "tool-response", "tool-call"]
    transcript = page.locator("#transcript").inner_text()
    assert "calculator" in transcript and "final_answer" in transcript
    assert "Observation:" in transcript
    assert "Question 1: what is 1 times 7?" in page.locator("#sample-input").inner_text()
    page.keyboard.press("ArrowRight")  # the next sample of the list, without a click
    page.wait_for_function("location.hash.endsWith('arith-00002')")
    page.wait_for_selector("#transcript .msg")
    assert "Question 2:" in page.locator("#sample-input").inner_text()
    page.go_back()
    page.wait_for_function("location.hash.endsWith('arith-00001')")
    facts = page.locator(".facts").inner_text()
    assert "tokens" in facts and "latency" in facts and "cost" in facts


def test_reasoning_and_code_steps_are_shown(viewer: Viewer) -> None:
    page = viewer.page
    page.evaluate("location.hash = '#/job/0/sample/arith-00000'")
    page.wait_for_selector("#transcript .msg")
    page.click("details.reasoning summary")
    assert "Let me think" in page.locator("details.reasoning pre").inner_text()
    page.evaluate("location.hash = '#/job/0/sample/arith-00002'")
    page.wait_for_selector("#transcript .msg")
    assert "print(x)" in page.locator("#transcript").inner_text()
    assert "Execution logs" in page.locator("#transcript").inner_text()


def test_filtering_a_job_by_error_shows_failures_apart_from_wrong_answers(
    viewer: Viewer, sweep: Path
) -> None:
    page = viewer.page
    records = [json.loads(line) for line in (sweep / "1" / "samples.jsonl").open()]
    errored = [r for r in records if r["status"] == "error"]
    rate_limited = [r for r in errored if r["error_type"] == "RateLimitError"]
    assert errored and rate_limited

    viewer.click('#jobs-table tr[data-job="1"]')
    assert "fix: lower runner.max_concurrency" in page.locator("#causes").inner_text()
    page.select_option("#status-filter", "error")
    assert page.locator("#sample-count").inner_text() == f"{len(errored)} of 30 samples"
    assert page.locator(".vbody .vrow.is-error").count() == len(errored)
    page.select_option("#cause-filter", "RateLimitError")
    rows = viewer.rows()
    assert len(rows) == len(rate_limited)
    assert all("error: RateLimitError" in row for row in rows)
    viewer.click(".vbody .vrow >> nth=0")
    box = page.wait_for_selector("#sample-error")
    assert "429 Too Many Requests" in box.inner_text()
    # A wrong answer is a scored 0, not an error.
    page.go_back()
    page.select_option("#status-filter", "ok")
    page.select_option("#cause-filter", "")
    page.select_option("#metric-filter", "exact")
    page.select_option("#score-filter", "0")
    wrong = [r for r in records if r["status"] == "ok" and r["scores"]["exact"] == 0]
    assert len(viewer.rows()) == len(wrong)
    assert page.locator(".vbody .vrow.is-error").count() == 0


def test_search_finds_samples_by_input_and_answer(viewer: Viewer) -> None:
    page = viewer.page
    viewer.click('#jobs-table tr[data-job="0"]')
    page.fill("#sample-search", "what is 17 times")
    rows = viewer.rows()
    assert len(rows) == 1 and "arith-00017" in rows[0]


def test_two_jobs_compared_list_flips_first_with_the_paired_statistics(
    viewer: Viewer, sweep: Path
) -> None:
    page = viewer.page
    page.check('input.pick[data-job="0"]')
    page.check('input.pick[data-job="2"]')
    viewer.click("#compare-selected")
    page.wait_for_selector("#pair-stats")
    expected = next(c for c in compare(load_jobs(sweep), [(0, 2)]) if c["metric"] == "exact")
    stats_text = page.locator("#pair-stats tbody tr").inner_text()
    assert f"{expected['diff']:+.3f}" in stats_text
    assert f"[{expected['ci_low']:.3f}, {expected['ci_high']:.3f}]" in stats_text
    mcnemar = expected["mcnemar"]
    assert f"{mcnemar['a_only']} / {mcnemar['b_only']}" in stats_text
    assert expected["verdict"] in stats_text

    flips = mcnemar["a_only"] + mcnemar["b_only"]
    assert page.locator("#flip-count").inner_text().startswith(f"{flips} flips on exact")
    kinds = page.locator(".vbody .vrow").evaluate_all("rs => rs.map(r => r.className)")
    assert all("flip" in k for k in kinds[:flips])
    page.check("#flips-only")
    assert len(viewer.rows()) == flips
    viewer.click(".vbody .vrow >> nth=0")
    page.wait_for_selector("#across-jobs")
    assert page.locator("#across-jobs tbody tr").count() == 4


def test_seeds_pool_into_one_row_per_model(viewer: Viewer, sweep: Path) -> None:
    page = viewer.page
    page.select_option("#pool", "seed")
    rows = page.locator("#jobs-table tbody tr")
    assert rows.count() == 2
    first = rows.nth(0).inner_text()
    assert "#0" in first and "#1" in first  # its member jobs
    # Pooled mean: each sample averaged over the seeds that scored it, then over samples.
    per_sample: dict[str, list[float]] = {}
    for job in ("0", "1"):
        for line in (sweep / job / "samples.jsonl").open():
            record = json.loads(line)
            if record["status"] == "ok":
                per_sample.setdefault(record["id"], []).append(record["scores"]["exact"])
    means = [sum(v) / len(v) for v in per_sample.values()]
    assert f"{sum(means) / len(means):.3f}" in first


def test_sorting_the_job_table_by_a_metric(viewer: Viewer) -> None:
    page = viewer.page
    page.click('th[data-col="m:exact"]')
    page.click('th[data-col="m:exact"]')  # descending
    order = page.locator("#jobs-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.job)")
    values = page.locator("#jobs-table tbody tr td:nth-child(5)").all_inner_texts()
    means = [float(v.split()[0]) for v in values]
    assert means == sorted(means, reverse=True) and len(order) == 4


def test_large_sweeps_load_transcripts_from_side_files_also_when_served(
    browser: Any, tmp_path: Path
) -> None:
    write_sweep(tmp_path, jobs=2, samples=12)
    build_view(tmp_path, embed_limit=0)
    assert sorted(p.name for p in (tmp_path / "view_files").iterdir()) == ["tx-0.js", "tx-1.js"]
    assert 'id="tx-0"' not in (tmp_path / "view.html").read_text()
    server = make_server(tmp_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for address in ((tmp_path / "view.html").as_uri(), url + "/"):
            view = Viewer(browser, address + "#/job/1/sample/arith-00004")
            view.page.wait_for_selector("#transcript .msg")
            assert "Question 4" in view.page.locator("#transcript").inner_text()
            view.close()
        response = browser.new_page().goto(url + "/0/samples.jsonl")
        assert response.status == 404  # only the viewer's files are served
    finally:
        server.shutdown()
        server.server_close()


def test_markup_in_a_record_is_shown_as_text_never_run(browser: Any, tmp_path: Path) -> None:
    write_sweep(tmp_path, jobs=1, samples=3)
    path = tmp_path / "0" / "samples.jsonl"
    records = [json.loads(line) for line in path.open()]
    attack = "</script><script>window.pwned = 1</script><img src=x onerror='window.pwned=2'>"
    records[0]["answer"] = attack
    records[0]["messages"][-1]["content"] = attack
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    build_view(tmp_path)
    view = Viewer(browser, (tmp_path / "view.html").as_uri() + "#/job/0/sample/arith-00000")
    view.page.wait_for_selector("#transcript .msg")
    assert attack in view.page.locator("#sample-answer").inner_text()
    assert view.page.evaluate("window.pwned") is None
    view.close()


def test_a_real_run_folder_opens_on_its_samples(browser: Any, tmp_path: Path) -> None:
    """Records as the runner writes them today (one job, scripted model, smoke task)."""
    from hydragent.runner import run_job
    from test_runner_support import compose_job

    run_job(compose_job(tmp_path, "model=scripted", "runner.max_concurrency=1"), tmp_path / "run")
    build_view(tmp_path / "run")
    view = Viewer(browser, (tmp_path / "run" / "view.html").as_uri())
    view.page.wait_for_selector(".vbody .vrow")
    assert view.page.locator("#sample-count").inner_text().endswith("samples")
    view.click(".vbody .vrow >> nth=0")
    view.page.wait_for_selector("#transcript .msg")
    roles = view.page.locator("#transcript .msg").evaluate_all("ms => ms.map(m => m.dataset.role)")
    assert "assistant" in roles and "user" in roles
    view.close()


def test_the_viewer_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    """benchmarks/view_bench.py (20 x 2,000 in docs/benchmarks.md) still works end to end."""
    out = tmp_path / "view.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "view_bench.py"
    args = ["--jobs", "4", "--samples", "30", "--repeat", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["samples"] == 30 and record["side_files"]["ms"]["filter status = error"] > 0
    assert "navigation start to job table drawn" in record["embedded"]["ms"]


def test_a_tool_call_is_shown_once_and_an_errored_reply_is_kept(
    browser: Any, tmp_path: Path
) -> None:
    """Issue 21: tool calls appeared twice (the message's raw JSON, then formatted), and an
    errored sample did not show what the model replied. Records as the runner writes them,
    with the runner's `raw_reply` field on an errored one."""
    from hydragent.runner import run_job
    from test_runner_support import compose_job

    run = tmp_path / "run"
    overrides = ["model=scripted", "agent=tool_calling", "tools=calculator", "task=arithmetic",
                 "scorer=numeric", "task.limit=2", "runner.max_concurrency=1"]  # fmt: skip
    run_job(compose_job(tmp_path, *overrides), run)
    path = run / "samples.jsonl"
    records = [json.loads(line) for line in path.open()]
    records[1].update(
        status="error",
        error="ValueError: reply violates grammar=json_object",
        error_type="ValueError",
        scores={},
        raw_reply="The answer is {not json",
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    build_view(run)

    first = records[0]["id"]
    view = Viewer(browser, (run / "view.html").as_uri() + f"#/job/0/sample/{first}")
    view.page.wait_for_selector("#transcript .msg")
    transcript = view.page.locator("#transcript").inner_text()
    assert "Calling tools" not in transcript and '"function"' not in transcript
    calls = view.page.locator("#transcript .call").all_inner_texts()
    assert [c.split()[1] for c in calls] == ["calculator", "final_answer"]
    assert "1234 * 5678" in calls[0]

    view.page.goto((run / "view.html").as_uri() + f"#/job/0/sample/{records[1]['id']}")
    view.page.wait_for_selector("#sample-raw-reply")
    assert view.page.locator("#sample-raw-reply").inner_text() == "The answer is {not json"
    assert "violates grammar" in view.page.locator("#sample-error").inner_text()
    view.close()


def test_a_folder_of_separate_runs_fits_the_screen_and_says_what_sets_each_apart(
    browser: Any, tmp_path: Path
) -> None:
    """Issue 21: `hydragent view outputs/` had ~20 setting columns (3,500 px), words broken
    mid-word, `model` as "-" for a recipe run, and a single run labelled `#0 23-00-18`."""
    from test_runner_support import run_cli

    outputs = tmp_path / "outputs"
    runs = {
        "2026-12-05/23-00-18": ["model=scripted"],
        "2026-12-05/23-04-51": ["model=scripted", "agent=tool_calling", "tools=calculator",
                                "task=arithmetic", "scorer=numeric", "runner.max_concurrency=8"],
        "2026-12-05/23-10-02": ["recipe=grammar_compare", "model=scripted"],
        "2026-12-05/23-15-40": ["model=scripted", "seed=1", "task=json_extraction",
                                "scorer=json", "grammar=json_object"],
        "2026-12-06/00-01-12": ["model=scripted", "model.model_id=scripted-b", "cache=on",
                                "roles=system_as_user", "messages=flat"],
    }  # fmt: skip
    for folder, overrides in runs.items():  # real runs: overrides.yaml, hydra.yaml's choices
        done = run_cli("run", *overrides, f"hydra.run.dir={outputs / folder}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    build_view(outputs)
    view = Viewer(browser, (outputs / "view.html").as_uri())
    page = view.page
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 1300  # no sideways scroll
    headers = page.locator("#jobs-table th").all_inner_texts()
    assert len(headers) <= 14 and "recipe" not in headers  # not one column per setting
    rows = page.locator("#jobs-table tbody tr")
    assert rows.nth(0).locator(".chips").inner_text().strip() == "the usual settings"
    tool_job = rows.nth(1).locator(".chip").all_inner_texts()
    assert tool_job[:4] == ["agent=tool_calling", "tools=calculator", "task=arithmetic",
                            "scorer=numeric"]  # fmt: skip
    assert "recipe=grammar_compare" in rows.nth(2).locator(".chip").all_inner_texts()
    usual = page.locator("#usual .chip").all_inner_texts()
    assert "agent=direct" in usual and "task=smoke" in usual  # "-" never stands for a value
    folder = rows.nth(1).locator(".folder")
    assert folder.inner_text() == "2026-12-05/23-04-51"
    assert folder.evaluate("e => e.getClientRects().length") == 1  # one line, never four
    for chip in page.locator("#jobs-table .chip").all():  # words never break mid-word
        assert chip.evaluate("e => e.getClientRects().length") == 1
    view.close()

    build_view(outputs / "2026-12-05/23-04-51")
    single = Viewer(browser, (outputs / "2026-12-05/23-04-51" / "view.html").as_uri())
    title = single.page.locator("h2").first.inner_text()
    assert title.startswith("#0 model=scripted agent=tool_calling") and "23-04-51" not in title
    single.close()
