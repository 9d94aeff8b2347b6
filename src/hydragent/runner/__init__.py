"""The runner: concurrency, deadlines, cache, crash-safe results and resume.

Names are imported on first use, so importing the package stays cheap."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunFailed": "hydragent.runner.errors",
    "config_hash": "hydragent.resume_rule",
    "read_records": "hydragent.runner.records",
    "latest_by_id": "hydragent.runner.records",
    "run_job": "hydragent.runner.job",
    "summarise": "hydragent.runner.summary",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hydragent.runner' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
