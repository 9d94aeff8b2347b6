"""The runner: concurrency, deadlines, cache, crash-safe results and resume."""

from __future__ import annotations

from hydragent.runner.job import run_job, summarise
from hydragent.runner.records import config_hash, read_records

__all__ = ["config_hash", "read_records", "run_job", "summarise"]
