"""Shared helpers for the runner tests: compose a job config the way `hydragent run` does."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def conf_dir(tmp_path: Path) -> Path:
    """The checkout's conf/, or a copy with stand-ins for groups other helpers have not
    committed yet (tools/none), so these tests do not depend on their timing."""
    if (CONF / "tools" / "none.yaml").exists():
        return CONF
    copy = tmp_path / "conf"
    if not copy.exists():
        shutil.copytree(CONF, copy)
        (copy / "tools").mkdir(exist_ok=True)
        (copy / "tools" / "none.yaml").write_text("# no tools\n{}\n")
    return copy


def compose_job(tmp_path: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(str(conf_dir(tmp_path)), version_base=None):
        return compose("config", overrides=["runner.progress=false", *overrides])


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240):
    """`python -m hydragent.cli ARGS` in a subprocess, as a user's shell would run it."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hydragent.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
