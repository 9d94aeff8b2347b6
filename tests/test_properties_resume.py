"""A result belongs to the sample that produced it, and no record is ever lost (properties).

Random sequences of what happens to a run folder between runs (a kill that tears the last
line, an edited task row, a changed config, a rerun) keep two invariants:
- every record ever written is still in samples.jsonl or under superseded/;
- after a rerun, each sample's result is the latest record of its (id, sample hash, config
  hash), and the summary counts exactly the samples of the task as it is now.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydragent.record import SAMPLES_FILE, SUMMARY_FILE, sample_hash
from hydragent.runner import run_job
from hydragent.tasks.base import Sample
from test_runner_support import compose_job, read_lines

N = 4
STEPS = st.lists(
    st.one_of(
        st.just(("run",)),
        st.just(("kill",)),
        st.tuples(st.just("edit"), st.integers(0, N - 1)),
        st.tuples(st.just("config"), st.integers(0, 2)),
    ),
    min_size=1,
    max_size=5,
)


def _write_task(path: Path, versions: list[int]) -> None:
    rows = [
        {"id": f"q{i}", "input": f"2+3? (take {v})", "target": "5"} for i, v in enumerate(versions)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _every_record(folder: Path) -> set[tuple[str, str, str, str]]:
    """(id, sample_hash, config_hash, started_at) of each record in the folder, set aside too."""
    found = set()
    for path in [folder / SAMPLES_FILE, *folder.glob(f"superseded/*/{SAMPLES_FILE}")]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a torn line: moved to the garbled side file on the next run
            found.add((r["id"], r.get("sample_hash"), r["config_hash"], r["started_at"]))
    return found


def _run(tmp: Path, folder: Path, task: Path, seed: int) -> None:
    cfg = compose_job(
        tmp,
        "model=scripted",
        "~model.match",
        "model.responses=['5']",
        "task=file",
        f"task.path={task}",
        "scorer=exact",
        f"seed={seed}",
        "runner.resume=new_config",
    )
    run_job(cfg, folder)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_kills_edits_and_config_changes_never_lose_a_record_nor_keep_a_stale_one(
    steps: list[tuple],
) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        folder, task = tmp / "run", tmp / "task.jsonl"
        versions, seed = [0] * N, 0
        _write_task(task, versions)
        ever: set[tuple[str, str, str, str]] = set()
        for step in [*steps, ("run",)]:
            if step[0] == "run":
                _run(tmp, folder, task, seed)
                ever |= _every_record(folder)
            elif step[0] == "kill" and (folder / SAMPLES_FILE).exists():
                line = (folder / SAMPLES_FILE).read_text().splitlines()[-1]
                with (folder / SAMPLES_FILE).open("a") as handle:
                    handle.write(line[: len(line) // 2])  # a write cut short by SIGKILL
            elif step[0] == "edit":
                versions[step[1]] += 1
                _write_task(task, versions)
            elif step[0] == "config":
                seed = step[1]
            assert ever <= _every_record(folder)  # nothing written is ever lost

        samples = [
            Sample(id=f"q{i}", input=f"2+3? (take {v})", target="5") for i, v in enumerate(versions)
        ]
        hashes = {s.id: sample_hash(s.as_dict()) for s in samples}
        records = read_lines(folder / SAMPLES_FILE)
        chash = records[-1]["config_hash"]
        latest = {}
        for record in records:
            latest[(record["id"], record["sample_hash"], record["config_hash"])] = record
        for sample_id, current in hashes.items():
            result = latest[(sample_id, current, chash)]
            assert result["status"] == "ok" and result["input"] == samples[int(sample_id[1:])].input
        summary = json.loads((folder / SUMMARY_FILE).read_text())
        assert summary["counts"] == {"total": N, "ok": N, "error": 0, "not_run": 0}
        assert summary["config_hash"] == chash


def test_an_edited_row_runs_again_and_its_old_record_stays(tmp_path: Path) -> None:
    folder, task = tmp_path / "run", tmp_path / "task.jsonl"
    _write_task(task, [0, 0, 0, 0])
    _run(tmp_path, folder, task, 0)
    _write_task(task, [0, 1, 0, 0])  # the user fixes the question of q1
    _run(tmp_path, folder, task, 0)
    records = read_lines(folder / SAMPLES_FILE)
    assert [r["id"] for r in records] == ["q0", "q1", "q2", "q3", "q1"]  # appended, none lost
    assert records[1]["input"] == "2+3? (take 0)" and records[-1]["input"] == "2+3? (take 1)"
    assert records[1]["sample_hash"] != records[-1]["sample_hash"]
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    assert summary["resumed"] == 3 and summary["counts"]["ok"] == 4
