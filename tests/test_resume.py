"""Resume: a rerun into the same run folder keeps finished samples and retries failed ones,
and a SIGKILL at any moment never loses or duplicates a sample."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hydragent.models.scripted import ScriptedModel
from hydragent.runner import RunFailed, latest_by_id, read_records, run_job
from hydragent.runner.resume import ResumeConflict
from test_runner_support import REPO, compose_job, read_lines

TESTS = Path(__file__).resolve().parent
SMOKE_IDS = {
    "smoke-capital",
    "smoke-rome",
    "smoke-sky",
    "smoke-bees",
    "smoke-opposite",
    "smoke-planet",
}


class PacedModel(ScriptedModel):
    """Scripted, but each call takes a while, so a kill lands mid-run."""

    def generate(self, messages, *args, **kwargs):
        time.sleep(float(os.environ.get("PACED_MODEL_DELAY", "0")))
        return super().generate(messages, *args, **kwargs)


class FlakyModel(ScriptedModel):
    """Fails on the bees question while FLAKY_MODEL_FAIL is set (outside the config, so the
    config hash, and therefore resume, is unaffected)."""

    def generate(self, messages, *args, **kwargs):
        if os.environ.get("FLAKY_MODEL_FAIL") and "bees" in str(messages):
            raise ConnectionError("the server went away")
        return super().generate(messages, *args, **kwargs)


def test_rerun_keeps_finished_samples_and_retries_failed_ones(tmp_path: Path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    cfg = compose_job(tmp_path, "model=scripted", f"model._target_={__name__}.FlakyModel")
    monkeypatch.setenv("FLAKY_MODEL_FAIL", "1")
    with pytest.raises(RunFailed) as first:
        run_job(cfg, run_dir)
    assert first.value.summary["counts"]["error"] == 1
    before = read_lines(run_dir / "samples.jsonl")

    monkeypatch.delenv("FLAKY_MODEL_FAIL")
    second = run_job(cfg, run_dir)
    after = read_lines(run_dir / "samples.jsonl")
    assert second["resumed"] == 5
    assert second["counts"] == {"total": 6, "ok": 6, "error": 0, "not_run": 0}
    assert after[:6] == before  # appended to, never rewritten: the failed try is still there
    assert [r["id"] for r in after[6:]] == ["smoke-bees"] and after[6]["status"] == "ok"
    assert latest_by_id(after)["smoke-bees"]["status"] == "ok"


def test_rerun_with_a_changed_seed_refuses_and_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_job(compose_job(tmp_path, "model=scripted"), run_dir)
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    with pytest.raises(ResumeConflict) as refused:
        run_job(compose_job(tmp_path, "model=scripted", "seed=1"), run_dir)
    message = str(refused.value)
    assert "already holds 6 results of another config" in message
    assert "runner.resume=new_config" in message and "hydra.run.dir" in message
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == files


def test_new_config_sets_the_earlier_results_aside_where_the_report_reads_them(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    run_job(compose_job(tmp_path, "model=scripted"), run_dir)
    earlier = (run_dir / "samples.jsonl").read_bytes()

    summary = run_job(
        compose_job(tmp_path, "model=scripted", "seed=1", "runner.resume=new_config"), run_dir
    )
    assert summary["resumed"] == 0 and summary["counts"]["ok"] == 6
    (aside,) = (run_dir / "superseded").iterdir()
    assert aside.name.startswith(read_lines(aside / "samples.jsonl")[0]["config_hash"] + "_")
    assert (aside / "samples.jsonl").read_bytes() == earlier  # moved as it was
    assert (aside / "summary.json").exists()
    assert len(read_lines(run_dir / "samples.jsonl")) == 6
    from hydragent.report.load import load_jobs

    (job,) = load_jobs(aside)
    assert len(job.records) == 6

    again = run_job(
        compose_job(tmp_path, "model=scripted", "seed=1", "runner.resume=new_config"), run_dir
    )
    assert again["resumed"] == 6  # the same config resumes; nothing more set aside
    assert len(list((run_dir / "superseded").iterdir())) == 1


def test_fresh_starts_over_keeping_the_earlier_results(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_job(compose_job(tmp_path, "model=scripted"), run_dir)
    summary = run_job(compose_job(tmp_path, "model=scripted", "runner.resume=fresh"), run_dir)
    assert summary["resumed"] == 0
    (aside,) = (run_dir / "superseded").iterdir()
    assert len(read_lines(aside / "samples.jsonl")) == 6


def test_a_garbled_line_is_moved_to_a_side_file_with_its_offset(tmp_path: Path, caplog) -> None:
    run_dir = tmp_path / "run"
    cfg = compose_job(tmp_path, "model=scripted")
    run_job(cfg, run_dir)
    lines = (run_dir / "samples.jsonl").read_bytes().splitlines(keepends=True)
    garbage = b'{"id": "smoke-x", "answer": \xff\xfe oops\n'
    offset = len(b"".join(lines[:3]))
    (run_dir / "samples.jsonl").write_bytes(b"".join(lines[:3]) + garbage + b"".join(lines[3:]))

    summary = run_job(cfg, run_dir)
    assert summary["resumed"] == 6  # every result kept, nothing run again
    assert (run_dir / "samples.jsonl").read_bytes() == b"".join(lines)
    (entry,) = read_lines(run_dir / "samples.garbled.jsonl")
    assert entry["file"] == "samples.jsonl" and entry["offset"] == offset
    assert base64.b64decode(entry["line_base64"]) == garbage.rstrip(b"\n")  # exact bytes
    assert entry["line"] == garbage.rstrip(b"\n").decode("utf-8", "replace")  # valid text
    assert f"(at byte {offset}) moved to" in caplog.text


def test_a_torn_last_line_is_kept_aside_and_its_sample_rerun(tmp_path: Path) -> None:
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
    assert read_lines(run_dir / "samples.garbled.jsonl")[0]["line"] == torn


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


def test_sigkill_at_random_moments_then_rerun_gives_exactly_one_result_per_sample(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 10_000))
    chance = random.Random(seed)
    # Kill at random moments: during start-up, between results, mid-write, while resuming.
    for _ in range(5):
        process = _start_job(tmp_path, run_dir)
        time.sleep(chance.uniform(0.0, 3.0))
        if process.poll() is not None:  # finished before the kill: the next one resumes
            continue
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, f"KILL_SEED={seed}"
        ids = [r["id"] for r in read_records(run_dir / "samples.jsonl")]
        assert len(ids) == len(set(ids)), f"KILL_SEED={seed}"

    final = _start_job(tmp_path, run_dir)
    _, stderr = final.communicate(timeout=240)
    assert final.returncode == 0, stderr.decode()
    records = read_lines(run_dir / "samples.jsonl")
    assert sorted(r["id"] for r in records) == sorted(SMOKE_IDS), f"KILL_SEED={seed}"
    assert all(r["status"] == "ok" for r in records)
