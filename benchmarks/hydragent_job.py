"""Run one hydragent job in this process, as `hydragent run` would, and time only the run.

Composing the config and starting the interpreter are cold-start costs that P3 measures; the
runner benchmarks time `run_job` alone so that the figure is what the servers force plus the
runner's own overhead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BENCH_DIR


@dataclass
class JobRun:
    wall_s: float
    samples: list[dict[str, Any]]
    started_at: float = 0.0  # epoch seconds, to line up with the server's clock
    ended_at: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time during the run, all threads

    @property
    def ok(self) -> int:
        return sum(1 for sample in self.samples if sample.get("status") == "ok")

    def first_error(self) -> str | None:
        return next((s.get("error") for s in self.samples if s.get("status") != "ok"), None)


def config_dir() -> Path:
    """hydragent's primary config folder: inside the package when installed, else the repo."""
    import hydragent

    packaged = Path(hydragent.__file__).resolve().parent / "conf"
    return packaged if (packaged / "config.yaml").exists() else BENCH_DIR.parent / "conf"


def compose(overrides: Sequence[str]) -> Any:
    """The job config for `overrides`, with Hydra's runtime config registered as a run has it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_job(overrides: Sequence[str], output_dir: Path) -> JobRun:
    """Compose, then time `hydragent.runner.run_job` into `output_dir`."""
    from hydragent.runner import run_job as hydragent_run_job

    cfg = compose(overrides)
    output_dir.mkdir(parents=True, exist_ok=True)
    started_at = time.time()
    cpu_start = time.process_time()
    start = time.perf_counter()
    hydragent_run_job(cfg, output_dir)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    ended_at = time.time()
    samples_file = output_dir / "samples.jsonl"
    lines = samples_file.read_text().splitlines() if samples_file.exists() else []
    samples = [json.loads(line) for line in lines if line.strip()]
    return JobRun(wall, samples, started_at, ended_at, cpu)


def write_tasks(path: Path, count: int) -> Path:
    """`count` tool-calling tasks whose answer is 5, as a JSONL task file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for index in range(count):
            sample = {
                "id": f"task-{index:05d}",
                "input": f"Task {index}: use the calculator to compute 2+3, then answer.",
                "target": "5",
            }
            handle.write(json.dumps(sample) + "\n")
    return path


def openai_overrides(base_url: str) -> list[str]:
    """Point model=openai at a local server."""
    return [
        "model=openai",
        f"model.api_base={base_url}",
        "model.model_id=latency",
        "model.api_key=sk-bench",
    ]
