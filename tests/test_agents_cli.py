"""Acceptance: `hydragent run model=scripted agent=tool_calling|code` completes multi-step
samples and samples.jsonl holds the full transcript."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)


def run_cli(tmp_path: Path, responses: list[object], *overrides: str) -> dict:
    script = tmp_path / "responses.jsonl"
    script.write_text("\n".join(json.dumps(r) for r in responses))
    hydragent = shutil.which("hydragent", path=str(Path(sys.executable).parent))
    if hydragent is None:
        pytest.skip("the hydragent console script is not installed")
    out = tmp_path / "run"
    command = [
        hydragent, "run", "model=scripted", "task=arithmetic", "task.limit=1",
        "model.match=null", "model.responses=[]", f"model.responses_file={script}",
        f"hydra.run.dir={out}", *overrides,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "samples.jsonl").read_text().splitlines()[0])


def test_tool_calling_agent_through_the_cli(tmp_path: Path) -> None:
    record = run_cli(
        tmp_path,
        [
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1234 * 5678"}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": 7006652}}]},
        ],
        "agent=tool_calling",
        "tools=calculator",
    )
    assert record["status"] == "ok" and record["answer"] == "7006652"
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["system", "user", "tool-call", "tool-response", "tool-call"]
    assert "7006652" in record["messages"][3]["content"]


def test_code_agent_through_the_cli(tmp_path: Path) -> None:
    record = run_cli(
        tmp_path,
        ["<code>\nx = 1234 * 5678\nprint(x)\n</code>", "<code>final_answer(x)</code>"],
        "agent=code",
        "tools=python",
    )
    assert record["status"] == "ok" and record["answer"] == "7006652"
    observations = [m["content"] for m in record["messages"] if m["role"] == "tool-response"]
    assert "7006652" in observations[0]
