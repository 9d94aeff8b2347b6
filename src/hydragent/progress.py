"""Counters the progress bar shows between finished samples: tokens and retries.

Retries: an API backend's retry (models/retry.py) is counted here rather than logged line by
line, so a dead endpoint shows `retries=18` on the bar instead of 18 warning lines.

Tokens: a hook for local engines, so the progress bar moves while a batch decodes.

A batched local generation can take minutes before its first sample finishes; a bar that
counts only finished samples then shows 0/4 the whole time. An engine calls `generated(n)`
after each decoding step (n = tokens decoded in that step, e.g. the rows in the batch), and
the runner shows the running count beside the bar. The module imports nothing heavy, and a
call costs a lock, so engines may call it whether a run listens or not.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_tokens = 0
_retries = 0


def generated(tokens: int = 1) -> None:
    """Count `tokens` just decoded by a local engine (thread-safe)."""
    global _tokens
    with _lock:
        _tokens += tokens


def decoded() -> int:
    """Tokens counted since the process started; the runner shows the difference."""
    return _tokens


def retried() -> int:
    """Count one retry of a model call (thread-safe); returns the count so far."""
    global _retries
    with _lock:
        _retries += 1
        return _retries


def retries() -> int:
    """Retries counted since the process started; the runner shows the difference."""
    return _retries
