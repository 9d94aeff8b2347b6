"""A sweep ends by naming its own folder and the commands that read it (issue 21, item 7)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)


def hydragent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = shutil.which("hydragent", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.skip("the hydragent console script is not installed")
    return subprocess.run(
        [command, *args], capture_output=True, text=True, timeout=150, cwd=cwd, check=False
    )


def test_a_sweep_ends_with_its_folder_and_the_next_commands(tmp_path: Path) -> None:
    sweep = tmp_path / "my sweep"
    done = hydragent("run", "-m", "model=scripted", "seed=0,1", f"hydra.sweep.dir={sweep}",
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-3:]
    assert last == [
        f"Sweep folder: {sweep} (2 jobs)",
        f"Next: hydragent report '{sweep}'",
        f"      hydragent view '{sweep}'",
    ]


def test_a_single_run_and_a_dry_sweep_print_no_sweep_folder(tmp_path: Path) -> None:
    single = hydragent("run", "model=scripted", f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    assert "Sweep folder" not in single.stdout
    dry = hydragent("validate", "-m", "model=scripted", "seed=0,1", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Sweep folder" not in dry.stdout
