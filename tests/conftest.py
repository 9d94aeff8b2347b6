"""Suite-wide rules: no network beyond loopback, the opt-in slow tier, a run folder per test."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SLOW_ENABLED = os.environ.get("HYDRAGENT_SLOW") == "1"
SLOW_REASON = (
    "slow tier (real bundled model or a built third-party server): set HYDRAGENT_SLOW=1 to run"
)


class NetworkBlocked(RuntimeError):
    """A test tried to reach something other than loopback."""


def is_loopback_address(family: int, address: Any) -> bool:
    """Loopback only: 127.0.0.0/8, ::1 (and its IPv4-mapped form), `localhost`, unix sockets."""
    if family == getattr(socket, "AF_UNIX", None):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a host name other than localhost: never resolved, never reached
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _guarded(original: Any) -> Any:
    def connect(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback_address(self.family, address):
            raise NetworkBlocked(
                f"tests may only connect to loopback; blocked a connection to {address!r}"
            )
        return original(self, address, *args, **kwargs)

    return connect


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Every test runs with socket connections limited to this machine (our own guard on the
    stdlib socket, so client libraries stay unpatched and behave as in production)."""
    originals = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}
    for name, original in originals.items():
        setattr(socket.socket, name, _guarded(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(socket.socket, name, original)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SLOW_ENABLED:
        return
    skip_slow = pytest.mark.skip(reason=SLOW_REASON)
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _fresh_hydra_state() -> Iterator[None]:
    """Hydra keeps process-wide singletons (GlobalHydra, HydraConfig): reset them after each
    test, so a test that composed a config cannot change how the next one behaves."""
    yield
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh folder for one test's run outputs (pass it as hydra.run.dir=...)."""
    folder = tmp_path / "run"
    folder.mkdir()
    return folder
