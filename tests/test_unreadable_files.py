"""Every file hydragent reads, it names when it cannot read it, and says what to do.

A user hands hydragent task files and scripted responses from spreadsheets, Windows editors and
other tools, and runs leave summary.json behind; a wrong byte must never become a traceback or
"not valid JSON, column 1" without the file (hydragent.textfile, report/load.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydragent.models.scripted import ScriptedModel
from hydragent.tasks.base import TaskDataError
from hydragent.tasks.files import FileTask
from test_runner_support import run_cli

ROWS = [{"id": "a", "input": "2+3?", "target": "5"}, {"id": "b", "input": "1+1?", "target": "2"}]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def test_a_task_file_with_a_byte_that_is_not_utf8_names_the_file_and_the_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "task.jsonl"
    path.write_bytes(_jsonl(ROWS).encode() + b'{"id": "c", "input": "caf\xe9", "target": "x"}\n')
    with pytest.raises(TaskDataError, match=rf"{path}:3: not UTF-8 text \(byte 0xe9 at column"):
        FileTask(str(path)).samples()
    (problem,) = FileTask(str(path)).check()
    assert problem[1].startswith(f"{path}:3: not UTF-8 text") and "iconv" in problem[1]


def test_a_csv_with_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "task.csv"
    path.write_bytes(b"id,input,target\na,2+3?,5\nb,caf\xe9,x\n")
    with pytest.raises(TaskDataError, match=rf"{path}:3: not UTF-8 text"):
        FileTask(str(path)).samples()


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "byte-order mark"])
def test_a_json_array_saved_as_jsonl_is_read_with_or_without_a_byte_order_mark(
    tmp_path: Path, bom: bytes
) -> None:
    path = tmp_path / "task.jsonl"
    path.write_bytes(bom + json.dumps(ROWS, indent=2).encode())
    assert [s.id for s in FileTask(str(path)).samples()] == ["a", "b"]


def test_jsonl_with_a_byte_order_mark_reads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "task.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _jsonl(ROWS).encode())
    assert [s.input for s in FileTask(str(path)).samples()] == ["2+3?", "1+1?"]


def test_a_json_object_spread_over_lines_as_jsonl_says_what_the_file_is(tmp_path: Path) -> None:
    path = tmp_path / "task.jsonl"
    path.write_text(json.dumps(ROWS[0], indent=2))
    with pytest.raises(TaskDataError, match="one JSON dict spread over several lines"):
        FileTask(str(path)).samples()


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "byte-order mark"])
def test_a_responses_file_reads_as_a_list_or_lines_with_or_without_a_bom(
    tmp_path: Path, bom: bytes
) -> None:
    lines, array = tmp_path / "r.jsonl", tmp_path / "r.json"
    lines.write_bytes(bom + b'"Paris"\n"4"\n')
    array.write_bytes(bom + b'[\n  "Paris",\n  "4"\n]\n')
    for path in (lines, array):
        assert ScriptedModel(responses_file=str(path)).responses[-2:] == ["Paris", "4"]


def test_a_responses_file_that_is_not_utf8_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'"Paris"\n"caf\xe9"\n')
    with pytest.raises(ValueError, match=rf"{path}:2: not UTF-8 text \(byte 0xe9"):
        ScriptedModel(responses_file=str(path))


@pytest.mark.parametrize("command", ["report", "view"])
def test_a_truncated_summary_is_rebuilt_from_the_samples_with_a_warning(
    tmp_path: Path, command: str
) -> None:
    run_dir = tmp_path / "run"
    smoke = ("model=scripted", "task=smoke", f"hydra.run.dir={run_dir}")
    assert run_cli("run", *smoke, cwd=tmp_path).returncode == 0
    summary = run_dir / "summary.json"
    summary.write_text(summary.read_text()[:200])  # a full disk cut it short
    result = run_cli(command, str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{summary} cannot be read" in result.stderr
    assert f"rebuilt from {run_dir / 'samples.jsonl'}" in result.stderr
    if command == "report":
        assert "1.000" in result.stdout  # the metric, from the records


@pytest.mark.parametrize("command", ["report", "view"])
def test_lines_of_samples_that_are_not_records_are_named_not_skipped_in_silence(
    tmp_path: Path, command: str
) -> None:
    run_dir = tmp_path / "run"
    smoke = ("model=scripted", "task=smoke", f"hydra.run.dir={run_dir}")
    assert run_cli("run", *smoke, cwd=tmp_path).returncode == 0
    samples = run_dir / "samples.jsonl"
    with samples.open("ab") as handle:
        handle.write(b'{"id": "torn", "inp')  # a line cut short by a kill
    result = run_cli(command, str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{samples}: 1 line(s) are not records" in result.stderr
