"""ApiModel: a model behind a network client, rate limited and retried (models/retry.py).

Its own module, beside the contract (base.py), so that each stays one layer.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hydragent.models.base import Model, clients_wait_for_first_use, in_dry_build
from hydragent.models.retry import (
    RateLimiter,
    RetryPolicy,
    acall_with_retries,
    call_with_retries,
    retry_policy,
)

T = TypeVar("T")


class ApiModel(Model):
    """A model behind a network client: the client is built lazily, calls are throttled/retried.

    Subclasses implement `create_client()` and use `self.call_api(fn, ...)` for every request.
    Clients' own retry loops should be turned off so that the retry policy is the only one.
    """

    def __init__(
        self,
        model_id: str | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        client: Any | None = None,
        requests_per_minute: float | None = None,
        retry: RetryPolicy | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model_id=model_id, custom_role_conversions=custom_role_conversions, **kwargs
        )
        self.requests_per_minute = requests_per_minute
        self.retry = retry_policy(retry)
        self.rate_limiter = RateLimiter(requests_per_minute)
        self._client = client
        self._client_lock = threading.Lock()

    def build_client(self) -> None:
        """Create the client now, as smolagents does in its constructors, so that a missing
        key or extra fails at construction; never inside `dry_build()`, nor inside the
        runner's `clients_on_first_use()` when the backend says its requests may not need it
        (`client_waits`). Backends call it at the end of their `__init__`."""
        if self._client is not None or in_dry_build():
            return
        if clients_wait_for_first_use() and self.client_waits():
            return
        self._client = self.create_client()

    def client_waits(self) -> bool:
        """Whether the runner may leave the client unbuilt until a request needs it: only a
        backend whose async path can do without it says yes (models/openai.py)."""
        return False

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self.create_client()
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        """Assigning `model.client` (a mock, a preconfigured client) replaces it."""
        self._client = value

    def create_client(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement create_client")

    def _apply_rate_limit(self) -> None:
        """Wait for the rate limiter (smolagents' name, for subclasses that call it)."""
        self.rate_limiter.throttle()

    @property
    def retryer(self) -> Callable[..., Any]:
        """`self.retryer(fn, *args, **kwargs)` runs `fn` under the retry policy, as
        smolagents' subclasses call it (after `_apply_rate_limit()`)."""

        def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
            if self.retry is None:
                return fn(*args, **kwargs)
            return call_with_retries(
                lambda: fn(*args, **kwargs),
                self.retry,
                describe=f"{type(self).__name__} call",
                endpoint=getattr(self, "api_base", None),
            )

        return run

    def call_api(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def attempt() -> T:
            self.rate_limiter.throttle()
            return fn(*args, **kwargs)

        return self.retryer(attempt)

    async def acall_api(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`call_api` for a coroutine function: the same rate limit and retry policy, waiting
        on the event loop."""

        async def attempt() -> T:
            await self.rate_limiter.athrottle()
            return await fn(*args, **kwargs)

        if self.retry is None:
            return await attempt()
        return await acall_with_retries(
            attempt,
            self.retry,
            describe=f"{type(self).__name__} call",
            endpoint=getattr(self, "api_base", None),
        )

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["retry"] = self.retry.model_dump() if self.retry is not None else False
        return data
