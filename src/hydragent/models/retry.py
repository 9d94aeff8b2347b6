"""Retries and rate limiting for API backends: the `retry` node's policy (tenacity), which
errors are transient (by status, transport error or a rate-limit message), Retry-After, and
the requests-per-minute limiter. The clients' own exceptions are what get retried and raised.

Retries are quiet: the first of each cause is logged, the rest only counted (the progress
bar shows `retries=N`). And an endpoint where nothing answers is said once: when a call
has used all its attempts on connection failures and no call to that endpoint has ever
answered, later calls to it fail at once with `EndpointUnreachable` instead of each
waiting through its own retries, so a run against a dead server ends in seconds.
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

from hydragent import progress

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


_CONNECT_NAMES = re.compile(r"(Connection|ConnectError|ConnectTimeout|NewConnectionError)")


def is_connection_failure(error: BaseException) -> bool:
    """Nothing accepted the connection (refused, unreachable host, DNS): not a timeout on a
    server that did answer, nor any HTTP status."""
    if status_code_of(error) is not None or "Timeout" in type(error).__name__:
        return False
    if isinstance(error, ConnectionRefusedError | ConnectionResetError):
        return True
    chain = [error, error.__cause__, error.__context__]
    return any(
        _CONNECT_NAMES.search(klass.__name__)
        for link in chain
        if link is not None
        for klass in type(link).__mro__
        if klass not in (BaseException, Exception, OSError)
    )


class EndpointUnreachable(ConnectionError):
    """Every call to one endpoint failed to connect: raised once per call after the first
    call spent its retries, without retrying (the sample's error says why)."""


QUIET_S = 60.0  # a retry's cause is logged at most once a minute; the bar counts the rest


class _Endpoints:
    """Per endpoint: has any call answered, and did one exhaust its retries unconnected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answered: set[str] = set()
        self.dead: dict[str, str] = {}  # endpoint -> the first call's last error
        self.logged_at: dict[str, float] = {}  # cause -> when its retry was last logged

    def first_retry_of(self, cause: str) -> bool:
        """True for a cause not logged in the last QUIET_S seconds: one line per cause and
        run, not one per sample and attempt."""
        now = time.monotonic()
        with self._lock:
            fresh = now - self.logged_at.get(cause, -QUIET_S) >= QUIET_S
            if fresh:
                self.logged_at[cause] = now
            return fresh


ENDPOINTS = _Endpoints()


def unreachable_message(endpoint: str, error: str) -> str:
    return (
        f"nothing answers at {endpoint}: every call failed to connect ({error}); start the "
        "server or fix the model's api_base, then rerun (finished samples are kept)"
    )


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
    where: str,
    describe: str,
    attempt: int,
    policy: RetryPolicy,
    wait_s: float,
    error: BaseException | None,
) -> None:
    """Count the retry; log the first of each cause at `where`, the rest at debug."""
    progress.retried()
    first = ENDPOINTS.first_retry_of(f"{where} {type(error).__name__}")
    logger.log(
        logging.WARNING if first else logging.DEBUG,
        "retrying %s (attempt %d/%d) in %.2fs after %s%s",
        describe,
        attempt + 1,
        policy.attempts,
        wait_s,
        describe_error(error) if error else "unknown error",
        "; further retries are counted on the progress bar" if first else "",
    )


def _refuse_dead(endpoint: str | None, where: str) -> None:
    """Raise EndpointUnreachable at once where another call found that nothing answers."""
    dead = ENDPOINTS.dead.get(where) if endpoint else None
    if dead is not None and where not in ENDPOINTS.answered:
        raise EndpointUnreachable(unreachable_message(where, dead))


def _gave_up(endpoint: str | None, where: str) -> bool:
    """Another call to this endpoint found that nothing answers there."""
    return bool(endpoint) and where in ENDPOINTS.dead and where not in ENDPOINTS.answered


def _failed(endpoint: str | None, where: str, error: Exception) -> None:
    """After the last attempt: a connection failure where nothing ever answered marks the
    endpoint dead and raises EndpointUnreachable; any other error is the caller's to raise."""
    if endpoint and is_connection_failure(error) and where not in ENDPOINTS.answered:
        with ENDPOINTS._lock:
            first = where not in ENDPOINTS.dead
            ENDPOINTS.dead.setdefault(where, describe_error(error))
        if first:
            logger.error("%s", unreachable_message(where, describe_error(error)))
        raise EndpointUnreachable(unreachable_message(where, describe_error(error))) from error


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    describe: str = "request",
    sleep: Callable[[float], None] = time.sleep,
    endpoint: str | None = None,
) -> T:
    """Run `fn`, retrying transient failures per `policy`. The first retry of each cause is
    logged, later ones counted (hydragent.progress). `endpoint` (the model's api_base) names
    where calls go: once one call there has failed to connect on every attempt and none has
    ever answered, the next calls raise EndpointUnreachable at once."""
    from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

    where = endpoint or describe  # no endpoint known: retries still quiet, no fast failing
    _refuse_dead(endpoint, where)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return _wait_s(policy, state.attempt_number, error)

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        _log_retry(where, describe, state.attempt_number, policy, wait_s, error)

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        retry=retry_if_exception(
            lambda error: is_retryable(error) and not _gave_up(endpoint, where)
        ),
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    try:
        result = retrying(fn)
    except Exception as error:
        _failed(endpoint, where, error)
        raise
    ENDPOINTS.answered.add(where)
    return result


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    describe: str = "request",
    endpoint: str | None = None,
) -> T:
    """`call_with_retries` for a coroutine function: the same policy, waits, Retry-After,
    quiet retries and dead-endpoint rule, the waits sleeping the task, not the event loop.
    A plain loop rather than tenacity's AsyncRetrying, which cost a fifth of a millisecond
    of CPU per call, a sixth of the runner's whole cost per request at 256 in flight
    (docs/benchmarks.md)."""
    import asyncio

    where = endpoint or describe
    _refuse_dead(endpoint, where)
    attempt = 1
    while True:
        try:
            result = await fn()
        except Exception as error:
            if attempt >= policy.attempts or not is_retryable(error) or _gave_up(endpoint, where):
                _failed(endpoint, where, error)
                raise
            wait_s = _wait_s(policy, attempt, error)
            _log_retry(where, describe, attempt, policy, wait_s, error)
            await asyncio.sleep(wait_s)
            attempt += 1
        else:
            ENDPOINTS.answered.add(where)
            return result


def retry_policy(retry: RetryPolicy | Mapping[str, Any] | bool | None) -> RetryPolicy | None:
    """`retry=False` turns retries off (smolagents' meaning); None or True is the default."""
    if retry is False:
        return None
    if retry is None or retry is True:
        return RetryPolicy()
    return retry if isinstance(retry, RetryPolicy) else RetryPolicy(**dict(retry))
