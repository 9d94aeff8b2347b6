"""Resume: a rerun into the same run folder keeps finished samples and retries failed ones,
and a SIGKILL at any moment never loses or duplicates a sample."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hydragent.models.scripted import ScriptedModel
from hydragent.runner import read_records, run_job
from test_runner_support import REPO, compose_job, read_lines

TESTS = Path(__file__).resolve().parent
SMOKE_IDS = {
    "smoke-capital",
    "smoke-add",
    "smoke-sky",
    "smoke-week",
    "smoke-opposite",
    "smoke-planet",
}


class PacedModel(ScriptedModel):
    """Scripted, but each call takes a while, so a kill lands mid-run."""

    def generate(self, messages, *args, **kwargs):
        time.sleep(float(os.environ.get("PACED_MODEL_DELAY", "0")))
        return super().generate(messages, *args, **kwargs)


class FlakyModel(ScriptedModel):
    """Fails on the week question while FLAKY_MODEL_FAIL is set (outside the config, so the
    config hash, and therefore resume, is unaffected)."""

    def generate(self, messages, *args, **kwargs):
        if os.environ.get("FLAKY_MODEL_FAIL") and "week" in str(messages):
            raise ConnectionError("the server went away")
        return super().generate(messages, *args, **kwargs)


def test_rerun_keeps_finished_samples_and_retries_failed_ones(tmp_path: Path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    cfg = compose_job(tmp_path, "model=scripted", f"model._target_={__name__}.FlakyModel")
    monkeypatch.setenv("FLAKY_MODEL_FAIL", "1")
    first = run_job(cfg, run_dir)
    assert first["counts"]["error"] == 1
    before = {r["id"]: r for r in read_lines(run_dir / "samples.jsonl")}

    monkeypatch.delenv("FLAKY_MODEL_FAIL")
    second = run_job(cfg, run_dir)
    after = {r["id"]: r for r in read_lines(run_dir / "samples.jsonl")}
    assert second["resumed"] == 5
    assert second["counts"] == {"total": 6, "ok": 6, "error": 0}
    assert len(read_lines(run_dir / "samples.jsonl")) == 6
    for sample_id in SMOKE_IDS - {"smoke-week"}:
        assert after[sample_id] == before[sample_id]  # kept as written, not re-run
    assert after["smoke-week"]["status"] == "ok"


def test_a_changed_config_reruns_everything(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_job(compose_job(tmp_path, "model=scripted"), run_dir)
    summary = run_job(compose_job(tmp_path, "model=scripted", "model.model_id=renamed"), run_dir)
    records = read_lines(run_dir / "samples.jsonl")
    assert summary["resumed"] == 0
    assert len(records) == 6 and {r["model"] for r in records} == {"renamed"}


def test_a_torn_last_line_is_dropped_and_its_sample_rerun(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = compose_job(tmp_path, "model=scripted")
    run_job(cfg, run_dir)
    lines = (run_dir / "samples.jsonl").read_text().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    (run_dir / "samples.jsonl").write_text("".join(lines[:-1]) + torn)

    summary = run_job(cfg, run_dir)
    records = read_lines(run_dir / "samples.jsonl")
    assert summary["resumed"] == 5
    assert sorted(r["id"] for r in records) == sorted(SMOKE_IDS)


def _start_job(tmp_path: Path, run_dir: Path) -> subprocess.Popen:
    code = (
        "import sys; from pathlib import Path; "
        f"sys.path.insert(0, {str(TESTS)!r}); "
        "from test_runner_support import compose_job; from hydragent.runner import run_job; "
        f"run_job(compose_job(Path({str(tmp_path)!r}), 'model=scripted', "
        f"'model._target_=test_resume.PacedModel', 'runner.max_concurrency=2'), "
        f"Path({str(run_dir)!r}))"
    )
    env = {**os.environ, "PACED_MODEL_DELAY": "0.3", "PYTHONPATH": str(TESTS)}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _line_count(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_sigkill_at_several_points_then_rerun_gives_one_line_per_sample(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Kill before any result, after one, mid-run and near the end; each time it resumes.
    for lines_before_kill in (0, 1, 3, 5):
        process = _start_job(tmp_path, run_dir)
        deadline = time.monotonic() + 120
        while _line_count(run_dir / "samples.jsonl") < lines_before_kill:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        ids = [r["id"] for r in read_records(run_dir / "samples.jsonl")]
        assert len(ids) == len(set(ids))

    final = _start_job(tmp_path, run_dir)
    _, stderr = final.communicate(timeout=240)
    assert final.returncode == 0, stderr.decode()
    records = read_lines(run_dir / "samples.jsonl")
    assert sorted(r["id"] for r in records) == sorted(SMOKE_IDS)
    assert all(r["status"] == "ok" for r in records)
