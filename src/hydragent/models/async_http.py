"""An OpenAI SDK client's POST, sent from the event loop by aiohttp, with the SDK's errors.

The runner holds thousands of requests in flight on one event loop. The SDK's AsyncOpenAI
sends through httpx's async pool, whose every request scans every connection: at 256 in
flight that scan alone cost 1.5 ms of CPU per request, ten times a bare aiohttp POST
(docs/benchmarks.md, P1-scale). So the runner's async path posts the body itself, with what
the SDK's sync client would send (its base URL, auth and default headers, query and timeout),
and raises what the SDK would raise: a status error is built by the client's own
`_make_status_error_from_response` (RateLimitError with its Retry-After headers, ...), a
transport failure is APIConnectionError, a timeout APITimeoutError. The retry policy and the
records read them exactly as they read the sync path's (models/retry.py).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any


class SdkPoster:
    """POSTs JSON for one SDK client, over one aiohttp session per event loop."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.base_url = str(client.base_url).rstrip("/")
        sent = {**getattr(client, "auth_headers", {}), **client.default_headers}
        self.headers = {k: v for k, v in sent.items() if isinstance(v, str)}  # Omit: left out
        self.query = {k: v for k, v in client.default_query.items() if isinstance(v, str)}
        self._session: tuple[asyncio.AbstractEventLoop, Any] | None = None

    def _timeout(self, given: Any) -> Any:
        import aiohttp

        timeout = self.client.timeout if given is None else given
        if isinstance(timeout, int | float):
            return aiohttp.ClientTimeout(total=float(timeout))
        return aiohttp.ClientTimeout(
            connect=getattr(timeout, "connect", None), sock_read=getattr(timeout, "read", None)
        )

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

        payload = {**body, **(options.get("extra_json") or {})}
        headers = {**self.headers, **(options.get("headers") or {})}
        params = {**self.query, **(options.get("params") or {})}
        url = self.base_url + path
        try:
            async with self.session().post(
                url,
                data=json.dumps(payload),
                headers=headers,
                params=params or None,
                timeout=self._timeout(options.get("timeout")),
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
        return self.client._client.build_request("POST", url)

    def _status_error(self, url: str, status: int, headers: Any, text: str) -> Exception:
        request = self._request(url)
        httpx = importlib.import_module(type(request).__module__.split(".")[0])
        response = httpx.Response(
            status, headers=list(headers.items()), content=text.encode(), request=request
        )
        return self.client._make_status_error_from_response(response)  # type: ignore[no-any-return]

    def _sdk_error(self, name: str, url: str) -> Exception:
        openai = importlib.import_module("openai")
        return getattr(openai, name)(request=self._request(url))  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close this loop's session (the runner awaits it before its loop ends)."""
        held, self._session = self._session, None
        if held is not None and held[0] is asyncio.get_running_loop():
            await held[1].close()
