"""Tasks read from files: built-in sets, local JSONL/CSV/Parquet, local `datasets` data.

Every reader yields `(where, row)` pairs, `where` being `file:line` for JSONL and CSV (the
line the row ends on) and `file: item N` / `file: row N` for a JSON list or Parquet. `load`
and `check` share them, so the line a run would fail on is the line `validate` names.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterator, Mapping
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from hydragent.tasks.base import Problem, Sample, SampleBuilder, Task, TaskDataError, check_fields
from hydragent.textfile import TextFileError, first_char, iter_lines, json_document, json_lines

BUILTIN_TASKS = ("smoke", "arithmetic", "json_extraction")
FILE_FORMATS = ("jsonl", "json", "csv", "parquet")
#: what task.path names, said where it names something else
_WANTED = "give the path of a .jsonl, .json, .csv or .parquet file"
DATA_EXTRA = "pip install 'hydragent[data]'"

Rows = Iterator[tuple[str, Any]]


def jsonl_rows(path: Path, label: str | None = None) -> Rows:
    """One JSON object per non-blank line, streamed; errors name `file:line` (the shared
    reader, hydragent.textfile: UTF-8, a byte-order mark dropped, arrays named as such)."""
    label = label or str(path)
    try:
        for number, row in json_lines(path, label):
            yield f"{label}:{number}", row
    except TextFileError as error:
        raise TaskDataError(str(error)) from None


def json_list_rows(path: Path) -> Rows:
    """A JSON array of objects, read whole (a JSON document cannot be streamed line by line)."""
    try:
        value = json_document(path)
    except TextFileError as error:
        raise TaskDataError(str(error)) from None
    if not isinstance(value, list):
        raise TaskDataError(f"{path}: expected a JSON array of objects, got {type(value).__name__}")
    for number, row in enumerate(value, start=1):
        yield f"{path}: item {number}", row


def csv_rows(path: Path) -> Rows:
    """CSV with a header row, streamed; a row whose field count differs from the header's
    is an error (csv.DictReader would silently pad or pile the extras under None)."""
    with _open_text(path, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if not header:
                raise TaskDataError(f"{path}:1: empty CSV: the first line must name the columns")
            for values in reader:
                where = f"{path}:{reader.line_num}"
                if not values:
                    continue
                if len(values) != len(header):
                    raise TaskDataError(
                        f"{where}: {len(values)} fields, but the header has {len(header)} "
                        f"({', '.join(header)}); quote fields that contain commas"
                    )
                yield where, dict(zip(header, values, strict=True))
        except csv.Error as error:
            raise TaskDataError(f"{path}:{reader.line_num}: not valid CSV ({error})") from None
        except UnicodeDecodeError:  # name the line: read it again, line by line
            try:
                for _ in iter_lines(path):
                    pass
            except TextFileError as named:
                raise TaskDataError(str(named)) from None
            raise


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"Parquet tasks need the `data` extra: {DATA_EXTRA}") from None
    try:
        return pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError... for a bad file
        raise TaskDataError(f"{path}: not a readable Parquet file ({error})") from None


def parquet_rows(path: Path) -> Rows:
    """Parquet, read one record batch at a time."""
    number = 0
    for batch in _parquet_file(path).iter_batches():
        for row in batch.to_pylist():
            number += 1
            yield f"{path}: row {number}", row


class BuiltinTask(Task):
    """A small set shipped in the package (src/hydragent/data/NAME.jsonl)."""

    def __init__(self, name: str, limit: int | None = None) -> None:
        super().__init__(limit)
        if name not in BUILTIN_TASKS:
            raise ValueError(f"unknown built-in task {name!r}; valid: {', '.join(BUILTIN_TASKS)}")
        self.name = name

    def load(self) -> list[Sample]:
        builder = SampleBuilder(None)
        with resources.as_file(resources.files("hydragent.data") / f"{self.name}.jsonl") as path:
            for where, row in jsonl_rows(path, f"built-in task {self.name}"):
                builder.add(row, where)
        return builder.samples


class FileTask(Task):
    """`task=file task.path=...`: JSONL, JSON list, CSV or Parquet; `fields` maps the
    columns holding id, input and target when they are named otherwise."""

    name = "file"

    def __init__(
        self,
        path: str,
        fields: Mapping[str, str] | None = None,
        format: str | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(limit)
        if not path or path == "???":
            raise ValueError("task=file needs task.path=FILE (.jsonl, .json, .csv or .parquet)")
        self.path = Path(path).expanduser()
        self.fields = check_fields(fields)
        if self.path.is_dir():  # before the format, which a folder's name would not give
            raise ValueError(f"task.path {self.path} is a folder, not a file; {_WANTED}")
        self.format = (format or self.path.suffix.lstrip(".")).lower()
        if self.format not in FILE_FORMATS:
            raise ValueError(
                f"task.path {self.path}: unknown format {self.format!r}; "
                f"valid: {', '.join(FILE_FORMATS)} (set task.format)"
            )
        self.name = self.path.stem

    def load(self) -> list[Sample]:
        if not self.path.is_file():
            raise FileNotFoundError(f"task.path not found: {self.path}")
        builder = SampleBuilder(self.fields)
        for where, row in self._rows():
            builder.add(row, where)
        return builder.samples

    def check(self) -> list[Problem]:
        """The file exists and every row parses into a sample (streamed: nothing is kept
        but the ids); for Parquet only the schema is read. Each problem names file:line."""
        if self.path.is_dir():
            return [("path", f"{self.path} is a folder, not a file; {_WANTED}")]
        if not self.path.is_file():
            return [("path", f"no such file: {self.path} (a .jsonl, .json, .csv or .parquet)")]
        try:
            if self.format == "parquet":
                return self._check_parquet_schema()
            builder = SampleBuilder(self.fields, keep=False)
            for where, row in self._rows():
                builder.add(row, where)
        except TaskDataError as error:
            return [("path", str(error))]
        except ImportError as error:
            return [("format", str(error))]
        return []

    def _check_parquet_schema(self) -> list[Problem]:
        columns = _parquet_file(self.path).schema_arrow.names
        column = self.fields["input"]
        if column not in columns:
            return [
                (
                    "fields.input",
                    f"{self.path}: no input column {column!r}; columns are {sorted(columns)}; "
                    "set task.fields.input to one of them",
                )
            ]
        return []

    def _rows(self) -> Rows:
        if self.format == "csv":
            return csv_rows(self.path)
        if self.format == "parquet":
            return parquet_rows(self.path)
        if self.format == "json" or _first_char(self.path) == "[":  # an array in a .jsonl
            return json_list_rows(self.path)
        return jsonl_rows(self.path)


class HFDatasetTask(Task):
    """A Hugging Face `datasets` dataset from local files: a builder name such as `json`,
    `csv` or `parquet` with `data_files`, or a folder written by `save_to_disk`."""

    name = "hf_dataset"

    def __init__(
        self,
        path: str,
        data_files: Any = None,
        split: str = "train",
        name: str | None = None,
        fields: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(limit)
        self.path = path
        self.data_files = data_files
        self.split = split
        self.config_name = name
        self.fields = check_fields(fields)

    def _saved_folder(self) -> Path | None:
        folder = Path(self.path).expanduser()
        markers = ("dataset_info.json", "dataset_dict.json")
        return folder if folder.is_dir() and any((folder / m).exists() for m in markers) else None

    def _file_patterns(self) -> list[str]:
        files = self.data_files
        if files is None:
            return []
        if isinstance(files, str):
            return [files]
        if isinstance(files, Mapping):
            values = list(files.values())
            return [str(p) for v in values for p in ([v] if isinstance(v, str) else v)]
        return [str(p) for p in files]

    def check(self) -> list[Problem]:
        """`datasets` is installed and the data is local: a save_to_disk folder, or a
        builder whose data_files all exist. Nothing is read (the run stays offline)."""
        if find_spec("datasets") is None:
            return [("_target_", f"task=hf_dataset needs the `data` extra: {DATA_EXTRA}")]
        if self._saved_folder() is not None:
            return []
        patterns = self._file_patterns()
        if not patterns:
            return [
                (
                    "data_files",
                    f"task.path={self.path!r} is not a save_to_disk folder, so it needs "
                    "task.data_files (e.g. task.path=json 'task.data_files=data/*.jsonl')",
                )
            ]
        missing = [p for p in patterns if not glob.glob(os.path.expanduser(p))]
        if missing:
            return [("data_files", f"no file matches {missing[0]!r}")]
        return []

    def load(self) -> list[Sample]:
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        try:
            import datasets
        except ImportError:
            raise ImportError(f"task=hf_dataset needs the `data` extra: {DATA_EXTRA}") from None
        folder = self._saved_folder()
        if folder is not None:
            dataset = datasets.load_from_disk(str(folder))
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[self.split]
        else:
            files = self.data_files
            if isinstance(files, Mapping):
                files = {str(k): v for k, v in files.items()}
            dataset = datasets.load_dataset(
                self.path, self.config_name, data_files=files, split=self.split
            )
        builder = SampleBuilder(self.fields)
        for number, row in enumerate(dataset, start=1):
            builder.add(row, f"hf_dataset {self.path}: row {number}")
        return builder.samples


def _open_text(path: Path, newline: str | None = None) -> Any:
    """UTF-8, with a leading byte-order mark dropped (spreadsheet exports write one)."""
    return path.open(encoding="utf-8-sig", newline=newline)


def _first_char(path: Path) -> str:
    """The first non-blank character of a text file (a `[` means a JSON list); "" when the
    file is not UTF-8 (the reader then names the line)."""
    try:
        return first_char(path)
    except TextFileError:
        return ""
