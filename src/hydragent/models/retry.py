"""Retries and rate limiting for API backends: the `retry` node's policy (tenacity), which
errors are transient (by status, transport error or a rate-limit message), Retry-After, and
the requests-per-minute limiter. The clients' own exceptions are what get retried and raised.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger("hydragent.models")

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """The `retry` config node: bounded attempts with exponential backoff and full jitter."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use

    attempts: int = Field(4, ge=1, description="total tries, the first included")
    initial_wait: float = Field(1.0, ge=0, description="seconds before the first retry")
    multiplier: float = Field(2.0, ge=1)
    max_wait: float = Field(60.0, ge=0, description="cap on one backoff wait")
    jitter: float = Field(0.5, ge=0, description="random extra wait, as a fraction of the wait")
    max_retry_after: float = Field(300.0, ge=0, description="cap on a server's Retry-After")


RETRYABLE_STATUS = frozenset({408, 409, 429})


def status_code_of(error: BaseException) -> int | None:
    """The HTTP status of a client error, whatever library raised it."""
    for source in (error, getattr(error, "response", None)):
        code = getattr(source, "status_code", None) or getattr(source, "status", None)
        if isinstance(code, int):
            return code
    response = getattr(error, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    return None


def _headers_of(error: BaseException) -> dict[str, str]:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:  # urllib's HTTPError carries them itself
        headers = getattr(error, "headers", None)
    if headers is None and isinstance(response, dict):
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders")
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def retry_after_seconds(error: BaseException) -> float | None:
    """The server's Retry-After (seconds or an HTTP date), if it sent one."""
    value = _headers_of(error).get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # only for HTTP-date values: keeps `import hydragent` light

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_TRANSIENT_NAMES = re.compile(
    r"(Timeout|Connection|ConnectError|NetworkError|RemoteProtocol|ReadError)"
)


_RATE_LIMIT_TEXT = re.compile(r"429|rate.limit|too many requests", re.IGNORECASE)


def is_retryable(error: BaseException) -> bool:
    """Timeouts, connection failures, 408/409/429 and 5xx; never other 4xx. An error with no
    status that says it is a rate limit (smolagents' test: "429", "rate limit", "too many
    requests") is retried too."""
    status = status_code_of(error)
    if status is not None:
        return status in RETRYABLE_STATUS or status >= 500
    if isinstance(error, TimeoutError | ConnectionError) or _RATE_LIMIT_TEXT.search(str(error)):
        return True
    return any(_TRANSIENT_NAMES.search(klass.__name__) for klass in type(error).__mro__)


def describe_error(error: BaseException) -> str:
    status = status_code_of(error)
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    prefix = f"HTTP {status}: " if status else ""
    return f"{prefix}{type(error).__name__}: {text}"[:500]


class RateLimiter:
    """Spaces requests evenly so that no more than `requests_per_minute` start per minute."""

    def __init__(self, requests_per_minute: float | None) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def throttle(self) -> None:
        wait = self._reserve()
        if wait > 0:
            time.sleep(wait)

    async def athrottle(self) -> None:
        """`throttle` on the event loop: the wait sleeps the task, not the loop."""
        wait = self._reserve()
        if wait > 0:
            import asyncio

            await asyncio.sleep(wait)

    def _reserve(self) -> float:
        """Take the next start slot; how long to wait for it."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        return start - now


def _wait_s(policy: RetryPolicy, attempt: int, error: BaseException | None) -> float:
    """How long to wait after failed attempt number `attempt`: the server's Retry-After
    (capped), else exponential backoff with jitter."""
    backoff = min(policy.max_wait, policy.initial_wait * policy.multiplier ** (attempt - 1))
    backoff += random.uniform(0, policy.jitter * backoff)
    server = retry_after_seconds(error) if error else None
    return min(server, policy.max_retry_after) if server is not None else backoff


def _log_retry(
    describe: str, attempt: int, policy: RetryPolicy, wait_s: float, error: BaseException | None
) -> None:
    logger.warning(
        "retrying %s (attempt %d/%d) in %.2fs after %s",
        describe,
        attempt + 1,
        policy.attempts,
        wait_s,
        describe_error(error) if error else "unknown error",
    )


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    describe: str = "request",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `fn`, retrying transient failures per `policy`; each retry is logged with its cause."""
    from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return _wait_s(policy, state.attempt_number, error)

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        _log_retry(describe, state.attempt_number, policy, wait_s, error)

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_exception(is_retryable),
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]], policy: RetryPolicy, describe: str = "request"
) -> T:
    """`call_with_retries` for a coroutine function: the same policy, waits, Retry-After and
    log lines, the waits sleeping the task, not the event loop. A plain loop rather than
    tenacity's AsyncRetrying, which cost a fifth of a millisecond of CPU per call, a sixth
    of the runner's whole cost per request at 256 in flight (docs/benchmarks.md)."""
    import asyncio

    attempt = 1
    while True:
        try:
            return await fn()
        except Exception as error:
            if attempt >= policy.attempts or not is_retryable(error):
                raise
            wait_s = _wait_s(policy, attempt, error)
            _log_retry(describe, attempt, policy, wait_s, error)
            await asyncio.sleep(wait_s)
            attempt += 1


def retry_policy(retry: RetryPolicy | Mapping[str, Any] | bool | None) -> RetryPolicy | None:
    """`retry=False` turns retries off (smolagents' meaning); None or True is the default."""
    if retry is False:
        return None
    if retry is None or retry is True:
        return RetryPolicy()
    return retry if isinstance(retry, RetryPolicy) else RetryPolicy(**dict(retry))
