"""An OpenAI SDK client's POST, sent from the event loop by aiohttp, with the SDK's errors.

The runner holds thousands of requests in flight on one event loop. The SDK's AsyncOpenAI
sends through httpx's async pool, whose every request scans every connection: at 256 in
flight that scan alone cost 1.5 ms of CPU per request, ten times a bare aiohttp POST
(docs/benchmarks.md, P1-scale). So the runner's async path posts the body itself, to the
`Endpoint` the SDK client would post to (its base URL, auth and default headers, query and
timeout), and raises what the SDK would raise: a status error is built by the client's own
`_make_status_error_from_response` (RateLimitError with its Retry-After headers, ...), a
transport failure is APIConnectionError, a timeout APITimeoutError. The retry policy and the
records read them exactly as they read the sync path's (models/retry.py).

The endpoint is read off a built client (`Endpoint.of_client`), or, where the model can say
it without the SDK (models/openai.py, `plain_endpoint`), from the model's own settings: then
the SDK is imported only when an error must be built in its types.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The SDK's DEFAULT_TIMEOUT (openai/_constants.py): 600 s to read, 5 s to connect; a test
# checks it against the installed SDK.
SDK_TIMEOUT_S = (5.0, 600.0)


@dataclass(frozen=True)
class Endpoint:
    """Where and how one client POSTs: base URL, the headers and query sent with every
    request, and its timeout (seconds in all, or (connect, read) seconds)."""

    base_url: str
    headers: dict[str, str]
    query: dict[str, str]
    timeout: float | tuple[float | None, float | None] | None

    @classmethod
    def of_client(cls, client: Any) -> Endpoint:
        """What a built SDK client sends (an `Omit` header is left out)."""
        sent = {**getattr(client, "auth_headers", {}), **client.default_headers}
        timeout = client.timeout
        if not isinstance(timeout, int | float | None):
            timeout = (getattr(timeout, "connect", None), getattr(timeout, "read", None))
        return cls(
            base_url=str(client.base_url).rstrip("/"),
            headers={k: v for k, v in sent.items() if isinstance(v, str)},
            query={k: v for k, v in client.default_query.items() if isinstance(v, str)},
            timeout=timeout,
        )


def client_timeout(timeout: Any) -> Any:
    """aiohttp's timeout for seconds in all, or (connect, read) seconds, or an httpx Timeout
    (a request's own `timeout` option)."""
    import aiohttp

    if timeout is None or isinstance(timeout, int | float):
        return aiohttp.ClientTimeout(total=None if timeout is None else float(timeout))
    if isinstance(timeout, tuple):
        return aiohttp.ClientTimeout(connect=timeout[0], sock_read=timeout[1])
    return aiohttp.ClientTimeout(
        connect=getattr(timeout, "connect", None), sock_read=getattr(timeout, "read", None)
    )


class SdkPoster:
    """POSTs JSON to one `Endpoint`, over one aiohttp session per event loop. `sdk_client`
    gives the SDK client whose error types a failure is raised in (built then, if need be)."""

    def __init__(self, endpoint: Endpoint, sdk_client: Callable[[], Any]) -> None:
        self.endpoint = endpoint
        self.sdk_client = sdk_client
        self._timeout = client_timeout(endpoint.timeout)
        self._session: tuple[asyncio.AbstractEventLoop, Any] | None = None

    def session(self) -> Any:
        """The running loop's session (a later loop, a second job, gets its own)."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session[0] is not loop:
            connector = aiohttp.TCPConnector(limit=0)  # the runner bounds what is in flight
            self._session = (loop, aiohttp.ClientSession(connector=connector))
        return self._session[1]

    async def post(self, path: str, body: dict[str, Any], options: dict[str, Any]) -> Any:
        """The parsed JSON reply to `body` at `path`; `options` as the SDK's `post` takes
        them (headers, params, extra_json, timeout)."""
        import aiohttp

        endpoint = self.endpoint
        extra_json, headers, params = (options.get(k) for k in ("extra_json", "headers", "params"))
        timeout = options.get("timeout")
        url = endpoint.base_url + path
        try:
            async with self.session().post(
                url,
                data=json.dumps({**body, **extra_json} if extra_json else body),
                headers={**endpoint.headers, **headers} if headers else endpoint.headers,
                params={**endpoint.query, **(params or {})} or None,
                timeout=self._timeout if timeout is None else client_timeout(timeout),
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise self._status_error(url, response.status, response.headers, text)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise self._sdk_error("APITimeoutError", url) from error
        except aiohttp.ClientError as error:
            raise self._sdk_error("APIConnectionError", url) from error
        return json.loads(text)

    def _request(self, url: str) -> Any:
        """An httpx request as the SDK's errors carry one, built by the client's own httpx."""
        return self.sdk_client()._client.build_request("POST", url)

    def _status_error(self, url: str, status: int, headers: Any, text: str) -> Exception:
        request = self._request(url)
        httpx = importlib.import_module(type(request).__module__.split(".")[0])
        response = httpx.Response(
            status, headers=list(headers.items()), content=text.encode(), request=request
        )
        return self.sdk_client()._make_status_error_from_response(response)  # type: ignore[no-any-return]

    def _sdk_error(self, name: str, url: str) -> Exception:
        request = self._request(url)
        openai = importlib.import_module("openai")
        return getattr(openai, name)(request=request)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close this loop's session (the runner awaits it before its loop ends)."""
        held, self._session = self._session, None
        if held is not None and held[0] is asyncio.get_running_loop():
            await held[1].close()
