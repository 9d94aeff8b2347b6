"""The sample record, declared once: its fields, the run folder's file names, and the one way
every file hydragent writes turns values into JSON.

The runner writes records (runner/job.py), the report and the viewer read them
(report/load.py, view/); all three import this module, which imports nothing of theirs.

**Every value written is valid and reads back** (docs/architecture.md, "Guarantees"). All JSON
hydragent writes goes through `dumps`, which refuses what a strict parser refuses
(`allow_nan=False`) after `clean` has mapped the two kinds of value that would fail:

- a float that is NaN or infinite becomes null, and the record's `flags.non_finite` lists where
  (a scorer's NaN never gets here: the runner makes that sample an error naming the scorer);
- a lone surrogate (`'x\\udfffy'`, from text decoded with surrogateescape) becomes U+FFFD, and
  `flags.replaced_surrogates` lists where. JSON could escape it, but UTF-8, Parquet (pyarrow)
  and strict JSON parsers cannot carry it; replacing it once, here, means samples.jsonl, the
  report's tables and the viewer all show the same text.

Readers apply `clean` too, so files written before this rule read the same way.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, TypedDict

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
GARBLED_FILE = "samples.garbled.jsonl"
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


class TokenCounts(TypedDict, total=False):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    reasoning_tokens: int
    cached_tokens: int


class SampleRecord(TypedDict, total=False):
    """One line of samples.jsonl: a sample's result under one config."""

    id: str
    index: int  # the sample's position in the task (dataset order)
    sample_hash: str  # hash of the sample's content: a result belongs to the sample it scored
    input: Any
    target: Any
    group: Any  # clusters for the report's paired statistics
    answer: Any
    raw_reply: str | None  # the model's last reply as sent, kept when the sample errored
    scores: dict[str, float]  # {} for an errored sample: an error is never a score of 0
    status: str  # "ok" | "error"
    error: str | None
    error_type: str | None
    messages: list[Any]
    token_usage: TokenCounts
    judge_token_usage: TokenCounts
    cost_usd: float | None
    latency_s: float
    model: str
    deployment: str | None
    sandbox: str | None
    job_id: str
    overrides: list[str]
    config_hash: str
    started_at: str
    flags: dict[str, list[str]]  # values `clean` changed: {"non_finite": [...], ...}


RECORD_FIELDS: tuple[str, ...] = tuple(SampleRecord.__annotations__)


def clean(value: Any, flags: dict[str, list[str]] | None = None, where: str = "") -> Any:
    """`value` with every non-finite float as None and every surrogate code point as U+FFFD
    (a pair held as two code points too: UTF-8 cannot carry either), any other object as its
    `str`; each change is noted in `flags` under its path (`answer`, `messages[2].content`)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if flags is not None:
            flags.setdefault("non_finite", []).append(where or "value")
        return None
    if isinstance(value, str):
        if not _SURROGATE.search(value):
            return value
        if flags is not None:
            flags.setdefault("replaced_surrogates", []).append(where or "value")
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {
            clean(str(k)): clean(v, flags, f"{where}.{k}" if where else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [clean(v, flags, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int):
        return value
    return clean(str(value), flags, where)  # what JSON does not know is written as its text


def _needs_cleaning(text: str | None) -> bool:
    """None: json.dumps refused a NaN. `\\ud` appears only where a character outside the
    BMP or a lone surrogate was escaped: only then is the slow walk needed."""
    return text is None or "\\ud" in text


def _strict(value: Any, **options: Any) -> str | None:
    try:
        return json.dumps(value, default=str, allow_nan=False, **options)
    except ValueError:
        return None


def _cleaned_text(
    value: Any, flags: dict[str, list[str]] | None, **options: Any
) -> tuple[Any, str]:
    """`value` cleaned (see `clean`) and its JSON text, which then needs nothing more."""
    cleaned = clean(value, flags)
    return cleaned, json.dumps(cleaned, allow_nan=False, **options)


def dumps(value: Any, **options: Any) -> str:
    """The JSON text of `value` that any strict parser reads back: cleaned (see the module
    docstring), objects JSON does not know as their `str`, NaN refused as a last guard."""
    text = _strict(value, **options)
    if _needs_cleaning(text):
        text = _cleaned_text(value, None, **options)[1]
    return str(text)


def encode_record(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The record as written and its samples.jsonl line (without the newline): cleaned, with
    what changed listed under `flags`. Most records need no walk (one json.dumps)."""
    text = _strict(record)
    if not _needs_cleaning(text):
        return record, str(text)
    flags: dict[str, list[str]] = {}
    out, _ = _cleaned_text({k: v for k, v in record.items() if k != "flags"}, flags)
    for kind, paths in (record.get("flags") or {}).items():
        flags[kind] = list(dict.fromkeys([*paths, *flags.get(kind, [])]))
    if flags:
        out["flags"] = flags
    return out, json.dumps(out, allow_nan=False)


def sample_hash(content: dict[str, Any]) -> str:
    """The hash of a sample's content (input, target and every other field a scorer or a
    prompt template may read), without its id: an edited row gets a new hash."""
    body = {k: v for k, v in content.items() if k != "id"}
    text = json.dumps(clean(body), sort_keys=True, default=str, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
