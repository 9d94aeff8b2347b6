"""Whether a remote backend needs a credential: a local server needs none, any other does.

An endpoint counts as local when its host is `localhost` (or ends in `.localhost` or
`.local`), or an IP address that is loopback (127.0.0.0/8, ::1), private (10/8, 172.16/12,
192.168/16, fc00::/7) or link-local. Host names are never resolved: a name in public DNS that
points at a private address still needs a key (set `api_key: EMPTY` for a keyless one).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from hydragent.secrets import is_secret_key

ENDPOINT_KEYS = ("api_base", "base_url", "azure_endpoint")
_ENV = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)")


def is_local_endpoint(url: str) -> bool:
    host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", ".local")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        _ = parts.port  # reading it checks it
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a port that is not a number, or out of range
        return False


def endpoint_problem(path: str, node: Mapping[str, Any]) -> str | None:
    """`model.api_base=ftp://x: ...` when an endpoint is not an http(s) URL with a host: the
    client would refuse every call before reaching any server."""
    for key in ENDPOINT_KEYS:
        value = node.get(key)
        if value not in (None, "") and not _is_http_url(str(value)):
            return (
                f"{path}.{key}={value}: not an http(s) URL with a host; write it as "
                "http://HOST:PORT/v1 (or https://...)"
            )
    return None


def credential_problem(path: str, node: Mapping[str, Any], raw: Mapping[str, Any]) -> str | None:
    """`model.api_key: ... needs a key` when the node points at a non-local endpoint and none
    of its secret keys (api_key, token: usually `${oc.env:NAME,null}`) holds a value.
    `raw` is the node before interpolation, to name the variable to set."""
    endpoint = next((str(node[k]) for k in ENDPOINT_KEYS if node.get(k)), None)
    secrets = [k for k in node if is_secret_key(k)]
    if endpoint is None or not secrets or is_local_endpoint(endpoint):
        return None
    if any(node.get(key) not in (None, "") for key in secrets):
        return None
    key = secrets[0]
    named = _ENV.match(str(raw.get(key) or ""))
    where = f"{named[1]} or {path}.{key}" if named else f"{path}.{key}"
    return (
        f"{path}.{key}: {endpoint} is not a local server, so it needs a key: set {where} "
        "(a loopback, localhost or private-network server needs none)"
    )


def listener_note(url: str, timeout_s: float = 1.0) -> str | None:
    """For a local endpoint, whether something accepts a TCP connection at its host and port
    (`validate` says so; no request is sent, no model called); None for remote endpoints,
    which validate never contacts."""
    if not is_local_endpoint(url) or not _is_http_url(url):
        return None
    import socket

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return f"something listens at {url} (a TCP connect; no model was called)"
    except OSError as error:
        return (
            f"nothing listens at {url} ({error.strerror or error}); a run would fail to "
            "connect: start the server first"
        )
