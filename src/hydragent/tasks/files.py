"""Tasks read from files: built-in sets, local JSONL/CSV/Parquet, local `datasets` data."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from hydragent.tasks.base import Sample, Task, rows_to_samples

BUILTIN_TASKS = ("smoke", "arithmetic", "json_extraction")
FILE_FORMATS = ("jsonl", "json", "csv", "parquet")


class BuiltinTask(Task):
    """A small set shipped in the package (src/hydragent/data/NAME.jsonl)."""

    def __init__(self, name: str, limit: int | None = None) -> None:
        super().__init__(limit)
        if name not in BUILTIN_TASKS:
            raise ValueError(f"unknown built-in task {name!r}; valid: {', '.join(BUILTIN_TASKS)}")
        self.name = name

    def load(self) -> list[Sample]:
        text = resources.files("hydragent.data").joinpath(f"{self.name}.jsonl").read_text()
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return rows_to_samples(rows, None, f"built-in task {self.name}")


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
        self.fields = dict(fields or {})
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
        return rows_to_samples(self._rows(), self.fields, str(self.path))

    def _rows(self) -> list[dict[str, Any]]:
        if self.format == "csv":
            with self.path.open(newline="") as handle:
                return list(csv.DictReader(handle))
        if self.format == "parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise ImportError(
                    "Parquet tasks need the `data` extra: pip install 'hydragent[data]'"
                ) from None
            return pq.read_table(self.path).to_pylist()
        text = self.path.read_text()
        if self.format == "json" or text.lstrip().startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]


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
        self.fields = dict(fields or {})

    def load(self) -> list[Sample]:
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        try:
            import datasets
        except ImportError:
            raise ImportError(
                "task=hf_dataset needs the `data` extra: pip install 'hydragent[data]'"
            ) from None
        folder = Path(self.path).expanduser()
        if folder.is_dir() and (folder / "dataset_info.json").exists():
            dataset = datasets.load_from_disk(str(folder))
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[self.split]
        else:
            files = self.data_files
            if hasattr(files, "items"):
                files = {str(k): v for k, v in files.items()}
            dataset = datasets.load_dataset(
                self.path, self.config_name, data_files=files, split=self.split
            )
        return rows_to_samples(dataset, self.fields, f"hf_dataset {self.path}")
