"""A whole run whose model writes nothing but escape attempts, under `sandbox=auto`: every
attempt becomes a sample in samples.jsonl, each records the sandbox it ran in, and nothing
outside changed: no file outside, no secret in the results, the loopback server saw nothing,
the bystander process lives."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from hydragent.runner import run_job
from hydragent.sandbox import SandboxUnavailable, resolve
from test_runner_support import compose_job, read_lines

CANARY = f"canary-{uuid.uuid4().hex}"


def attempts(outside: Path, port: int, bystander: int) -> list[str]:
    """One model reply per sample: code that tries one route and reports what it got."""
    return [
        "import os\nfinal_answer(dict(os.environ))",
        f"final_answer(open({str(outside / 'secret.txt')!r}).read())",
        f"open({str(outside / 'written.txt')!r}, 'w').write('x')\nfinal_answer('wrote')",
        f"import os\nos.remove({str(outside / 'victim.txt')!r})\nfinal_answer('removed')",
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "final_answer('connected')",
        f"import os\nos.kill({bystander}, 9)\nfinal_answer('killed')",
        "import os\nwhile True:\n    os.fork()",
        "while True:\n    pass",
        "import os\nos._exit(0)",
        "import json, os, struct, sys\n"
        "message = json.dumps({'type': 'result', 'error': None}).encode()\n"
        "os.write(int(sys.argv[2]), struct.pack('>I', len(message)) + message)",
    ]


def test_every_escape_attempt_is_a_recorded_sample_and_none_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        spec = resolve({"kind": "auto"})
    except SandboxUnavailable as error:
        pytest.skip(f"no kernel isolation on this machine: {error}")
    monkeypatch.setenv("HYDRAGENT_TEST_SECRET", CANARY)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(CANARY)
    (outside / "victim.txt").write_text("keep me")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    hits: list[object] = []
    threading.Thread(target=lambda: hits.append(server.accept()), daemon=True).start()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        codes = attempts(outside, server.getsockname()[1], bystander.pid)
        data = tmp_path / "attacks.jsonl"
        data.write_text(
            "".join(
                json.dumps({"id": f"attack-{i:02d}", "input": f"attack-{i:02d}", "target": "x"})
                + "\n"
                for i in range(len(codes))
            )
        )
        cfg = compose_job(
            tmp_path,
            "model=scripted",
            "agent=code",
            "agent.max_steps=1",
            "agent.timeout_s=2",
            "agent.authorized_imports=null",
            "task=file",
            f"task.path={data}",
            "runner.max_concurrency=4",
            "runner.max_error_rate=1",
        )
        cfg.model.match = {
            f"attack-{i:02d}": f"<code>\n{code}\n</code>" for i, code in enumerate(codes)
        }
        run_job(cfg, tmp_path / "run")
        records = read_lines(tmp_path / "run" / "samples.jsonl")
        text = (tmp_path / "run" / "samples.jsonl").read_text()
        assert sorted(r["id"] for r in records) == [f"attack-{i:02d}" for i in range(len(codes))]
        assert {r["sandbox"] for r in records} == {spec.name}
        assert CANARY not in text
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "victim.txt"]
        assert (outside / "victim.txt").read_text() == "keep me"
        assert hits == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        server.close()
    assert os.environ["HYDRAGENT_TEST_SECRET"] == CANARY
