"""Every value written is valid and reads back (hydragent.record), as properties.

Any string (lone surrogates, control characters, markup, huge) or float (NaN, inf, -0.0) a
sample's answer holds goes through samples.jsonl, the report's tables and results.parquet and
the viewer's data unchanged, or changed in the one documented way and flagged; no file fails
a strict JSON parser. And the cases a user meets: a scorer's NaN, an off-grammar reply."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydragent.record import REPLACEMENT, SAMPLES_FILE, SUMMARY_FILE
from hydragent.report.load import load_jobs
from hydragent.runner import RunFailed, run_job
from hydragent.runner.records import record_line, write_json_atomic
from hydragent.runner.summary import summarise
from hydragent.scorers.base import Scorer
from hydragent.view import _script_json, view_data
from test_runner_support import compose_job, read_lines

ODD = ["\udfff", "\ud800", "\x00", "\x1b", "\u2028", "</script>", '"', "\\", "😀", "\ufeff"]
TEXT = st.one_of(
    st.text(),
    st.lists(st.sampled_from([*ODD, "x", " "]), max_size=40).map("".join),
    st.builds(lambda piece, n: piece * n, st.text(max_size=4), st.integers(0, 25_000)),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)


def strict_loads(text: str) -> Any:
    """JSON as a strict parser reads it: no NaN/Infinity, and every string valid Unicode
    (a lone surrogate escape is refused by strict parsers and cannot be encoded as UTF-8)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    value = json.loads(text, parse_constant=refuse)

    def walk(item: Any) -> None:
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            for key, inner in item.items():
                walk(key)
                walk(inner)
        elif isinstance(item, list):
            for inner in item:
                walk(inner)

    walk(value)
    return value


def expected(value: Any) -> tuple[Any, bool]:
    """What a value reads back as, and whether the record flags it."""
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else (None, True)
    replaced = "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return replaced, replaced != value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


def _write_job(folder: Path, answer: Any, score: float) -> None:
    record = {
        "id": "s1",
        "index": 0,
        "input": "question",
        "target": "t",
        "answer": answer,
        "scores": {"m": score},
        "status": "ok",
        "messages": [{"role": "assistant", "content": answer}],
        "token_usage": {"total_tokens": 1},
        "config_hash": "h",
    }
    record, line = record_line(record, secrets=[])
    folder.mkdir(parents=True)
    (folder / SAMPLES_FILE).write_text(line + "\n")
    write_json_atomic(folder / SUMMARY_FILE, summarise([record], wall_time_s=0.0))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(answer=st.one_of(TEXT, FLOATS), score=st.floats(allow_nan=False, allow_infinity=False))
def test_any_answer_reads_back_the_same_everywhere_or_flagged(answer: Any, score: float) -> None:
    import pyarrow.parquet as pq

    from hydragent.report.tables import results_frame

    want, flagged = expected(answer)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        _write_job(folder, answer, score)
        (line,) = (folder / SAMPLES_FILE).read_text().splitlines()
        written = strict_loads(line)
        strict_loads((folder / SUMMARY_FILE).read_text())
        assert same(written["answer"], want)
        assert same(written["messages"][0]["content"], want)
        assert ("answer" in json.dumps(written.get("flags") or {})) is flagged
        assert same(written["scores"]["m"], score)

        jobs = load_jobs(folder)
        (record,) = jobs[0].records
        assert same(record["answer"], want)
        frame = results_frame(jobs)
        frame.to_parquet(folder / "results.parquet", index=False)
        (row,) = pq.read_table(folder / "results.parquet").to_pylist()
        as_text = None if want is None else want if isinstance(want, str) else json.dumps(want)
        assert row["answer"] == as_text
        assert same(row["score_m"], score)

        index, transcripts = view_data(jobs, folder)
        page_index = strict_loads(_script_json(index))
        (shown,) = strict_loads(transcripts[0]).values()
        assert same(shown["answer"], want)
        assert page_index["rows"][0][0]["sc"]["m"] == score


class ValueScorer(Scorer):
    """Scores every answer with the value it was given (a scorer with a bug, for the test)."""

    metrics = ("weird",)

    def __init__(self, value: float = float("nan")) -> None:
        self.value = value

    def score(self, answer: str | None, sample: Any) -> dict[str, float]:
        return {"weird": self.value}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_scorer_that_returns_nan_or_inf_makes_an_error_naming_it(
    tmp_path: Path, value: str
) -> None:
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "task=smoke",
        "scorer=exact",
        f"+scorer.bad={{_target_: test_properties_records.ValueScorer, value: {value}}}",
    )
    with pytest.raises(RunFailed):
        run_job(cfg, tmp_path / "run")
    records = read_lines(tmp_path / "run" / SAMPLES_FILE)
    assert all(r["status"] == "error" and r["error_type"] == "InvalidScore" for r in records)
    assert all("scorer ValueScorer returned" in r["error"] for r in records)
    assert all(r["scores"] == {} for r in records)
    summary = strict_loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary["counts"]["error"] == 6 and summary["metrics"] == {}
    for line in (tmp_path / "run" / SAMPLES_FILE).read_text().splitlines():
        strict_loads(line)


def test_an_off_grammar_reply_is_kept_in_the_errored_record(tmp_path: Path) -> None:
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps('{"a": 1}') + "\n" + json.dumps("not json at all") + "\n")
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "task=smoke",
        "~model.match",
        "model.responses=null",
        f"+model.responses_file={responses}",
        "grammar=json_object",
        "scorer=includes",
        "runner.max_concurrency=1",
        "runner.max_error_rate=1",
    )
    run_job(cfg, tmp_path / "run")
    records = read_lines(tmp_path / "run" / SAMPLES_FILE)
    failed = [r for r in records if r["status"] == "error"]
    assert len(failed) == 3 and {r["raw_reply"] for r in failed} == {"not json at all"}
    assert all(r["raw_reply"] is None for r in records if r["status"] == "ok")
    _, transcripts = view_data(load_jobs(tmp_path / "run"), tmp_path / "run")
    shown = strict_loads(transcripts[0])  # what the viewer's sample page reads
    assert {shown[r["id"]]["raw_reply"] for r in failed} == {"not json at all"}


def test_a_lone_surrogate_in_an_answer_survives_run_report_and_view(tmp_path: Path) -> None:
    from hydragent.report import write_report
    from hydragent.view import build_view

    responses = tmp_path / "responses.jsonl"
    responses.write_text('"x\\udfffy"\n')
    cfg = compose_job(
        tmp_path,
        "model=scripted",
        "task=smoke",
        "~model.match",
        "model.responses=null",
        f"+model.responses_file={responses}",
        "runner.max_error_rate=1",
    )
    run_job(cfg, tmp_path / "run")
    records = [
        strict_loads(x) for x in (tmp_path / "run" / SAMPLES_FILE).read_text().split("\n")[:-1]
    ]
    assert {r["answer"] for r in records} == {f"x{REPLACEMENT}y"}
    assert all(
        r["flags"] == {"replaced_surrogates": ["answer", "messages[1].content"]} for r in records
    )
    report = write_report(tmp_path / "run")
    assert any(p.name == "results.parquet" for p in report.files)
    page = build_view(tmp_path / "run").read_text(encoding="utf-8")
    assert f"x{REPLACEMENT}y" in page or "x\\ufffdy" in page
