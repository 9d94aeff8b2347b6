"""Every registered backend keeps the contract its declaration states.

Parametrized over the registry (models/registry.py), so a backend added as one module and
its conf/model YAML is checked like the others: its declaration is complete and true of its
class, it builds dry (no weights, no network, no key), it sends one request through a
loopback server (or a fake engine, or a tiny model), and each portable generation setting is
either found where its declaration says it goes on the wire, or named as not sent.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.servers import LoopbackServer, bedrock_app, ollama_app, openai_app, running

from hydragent.generation import GenerationConfig
from hydragent.models import Model, dry_build
from hydragent.models.registry import backends, helper_groups
from hydragent.models.spec import UNIVERSAL_HELPERS, Applied, BackendSpec, Field

ROOT = Path(__file__).resolve().parents[1]
KEYS = sorted(backends())
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
#: every portable setting, set, so that each must be sent or named as not sent
EVERY_SETTING = GenerationConfig(
    max_tokens=7,
    temperature=0.5,
    top_p=0.9,
    top_k=5,
    stop=["STOP"],
    seed=3,
    frequency_penalty=0.25,
    presence_penalty=0.5,
    reasoning_effort="low",
    reasoning_tokens=1024,
)


def yaml_node(key: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf" / "model" / f"{key}.yaml").read_text())


# --- the declaration -----------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_the_declaration_is_complete_and_true_of_its_class(key: str) -> None:
    spec = backends()[key]
    cls = spec.model
    assert spec.key == key and issubclass(cls, Model) and cls.declaration is spec
    node = yaml_node(key)
    assert node["_target_"] == f"{cls.__module__}.{cls.__name__}", "conf/model names the class"
    pyproject = (ROOT / "pyproject.toml").read_text()
    if spec.extra is None:
        assert spec.modules == ()
    else:
        assert f"\n{spec.extra} = [" in pyproject, f"pyproject.toml has the {spec.extra} extra"
        assert spec.modules, "the declaration says what the extra installs"
    known = {*UNIVERSAL_HELPERS, *helper_groups()}
    assert spec.helpers <= known
    for group in spec.helpers:
        assert (ROOT / "conf" / group).is_dir(), f"helper group {group} has a conf/ folder"
    streams = cls.request_stream is not Model.request_stream
    assert spec.streaming == streams, "streaming is declared as the class implements it"
    assert (cls.supported_grammars, cls.native_tools) == (spec.grammars, spec.native_tools)
    assert (cls.takes_images, cls.returns_reasoning) == (spec.images, spec.reasoning)
    assert all(fragment == fragment.lower() for fragment in spec.fixes), "fixes match lowercase"
    if spec.client is not None:
        module, _, name = spec.client.partition(":")
        library = pytest.importorskip(module)
        assert callable(getattr(library, name)), f"{spec.client} is the client constructor"


@pytest.fixture(autouse=True)
def offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 finds these and never asks the instance metadata service."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ):
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("key", KEYS)
def test_it_builds_dry_and_maps_every_portable_setting(key: str) -> None:
    spec = backends()[key]
    arguments = {
        k: ("m" if v == "???" else v)
        for k, v in yaml_node(key).items()
        if k != "_target_" and not (isinstance(v, str) and v.startswith("${"))
    }
    with dry_build():
        model = spec.model(**arguments, generation=EVERY_SETTING)
    names = model.generation_names()
    assert set(names) == set(GenerationConfig.model_fields), "every portable key is mapped"
    sent = model.sent_generation()
    unsent = set(model.unsent_generation())
    for field in GenerationConfig.model_fields:
        assert (field in sent) != (field in unsent) or field == "seed", field
    assert isinstance(model.environment_problems(), list)


# --- one request each ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_server() -> Iterator[LoopbackServer]:
    with running(openai_app) as server:
        yield server


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[LoopbackServer]:
    with running(ollama_app) as server:
        yield server


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[LoopbackServer]:
    with running(bedrock_app) as server:
        yield server


def _fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A stand-in `vllm` module (the backend's one import seam) that records SamplingParams."""
    from hydragent.models import vllm as vllm_backend
    from tiny_models import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(tmp_path)
    sampled: list[dict[str, Any]] = []

    class LLM:
        def __init__(self, model: str, **kwargs: Any) -> None:
            pass

        def get_tokenizer(self) -> Any:
            return tokenizer

        def generate(self, prompts: list[dict], sampling_params: list, use_tqdm: bool) -> list:
            sampled.extend(params for params in sampling_params)
            completion = types.SimpleNamespace(text="Paris", token_ids=[1, 2])
            return [
                types.SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[completion])
                for p in prompts
            ]

    module = types.SimpleNamespace(
        LLM=LLM, SamplingParams=dict, sampling_params=types.SimpleNamespace()
    )
    monkeypatch.setattr(vllm_backend, "import_vllm", lambda: module)
    return sampled


Wire = Callable[[], dict[str, Any] | None]


def _through_loopback(
    key: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], Wire]:
    """Constructor arguments that point a backend at its loopback server (or fake engine), and
    how to read what it sent. A new backend adds its line here."""
    if key == "bedrock":
        server = request.getfixturevalue("bedrock_server")
        kwargs = {"endpoint_url": server.url, "region_name": "us-east-1"}
        return {"model_id": "m", "client_kwargs": kwargs}, lambda: server.requests[-1].json
    if key == "ollama":
        server = request.getfixturevalue("ollama_server")
        return {"model_id": "m", "api_base": server.url}, lambda: server.requests[-1].json
    if key == "scripted":
        return {"responses": ["Paris"]}, lambda: None
    if key in ("transformers", "mlx"):
        if key == "mlx":
            pytest.importorskip("mlx_lm")
        pytest.importorskip("torch")
        from tiny_models import build_tiny_llama

        return {"model_id": str(build_tiny_llama(tmp_path)), "chat_template": "plain"}, lambda: None
    if key == "vllm":
        sampled = _fake_vllm(tmp_path, monkeypatch)
        return {"model_id": "m"}, lambda: sampled[-1]
    server = request.getfixturevalue("openai_server")
    server.requests.clear()
    url = f"{server.url}/v1"
    arguments: dict[str, Any] = {
        "openai": {"model_id": "m", "api_base": url, "api_key": "k"},
        "vllm_server": {"model_id": "m", "api_base": url},
        "azure_openai": {
            "model_id": "m",
            "azure_endpoint": server.url,
            "api_key": "k",
            "api_version": "2024-10-21",
        },
        "inference_client": {"model_id": "m", "base_url": url, "token": "t"},
        "litellm": {"model_id": "openai/m", "api_base": url, "api_key": "k"},
        "litellm_router": {
            "model_id": "g",
            "model_list": [
                {
                    "model_name": "g",
                    "litellm_params": {"model": "openai/m", "api_base": url, "api_key": "k"},
                }
            ],
        },
    }[key]
    return arguments, lambda: server.requests[-1].json


def _at(body: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a request body. `extra_body` is merged into the JSON body
    by the openai and huggingface_hub clients, so its fields are read at the top."""
    value: Any = body
    for part in path.removeprefix("extra_body.").split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("key", KEYS)
def test_one_request_sends_each_setting_where_the_declaration_says(
    key: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec: BackendSpec = backends()[key]
    arguments, wire = _through_loopback(key, request, tmp_path, monkeypatch)
    model = spec.model(**arguments, generation=EVERY_SETTING)
    reply = model.generate(QUESTION)
    assert isinstance(reply.content, str) and reply.token_usage is not None
    body = wire()
    if body is None:  # an engine in this process: nothing on a wire to read back
        return
    settings = EVERY_SETTING.settings()
    for portable, native in model.generation_names().items():
        if native is None or isinstance(native, Applied) or portable == "stop":
            continue
        field = native if isinstance(native, Field) else Field(native)
        expected = field.convert(settings[portable]) if field.convert else settings[portable]
        assert _at(body, field.path) == expected, f"generation.{portable} -> {field.path}"
    model.cleanup()


def test_every_backend_is_reachable_from_the_conformance_table() -> None:
    """The loopback table above covers the registry: a backend without a line fails here."""
    source = Path(__file__).read_text()
    missing = [key for key in KEYS if f'"{key}"' not in source]
    assert not missing, f"add a loopback line for {missing} in _through_loopback"


def test_importing_hydragent_imports_no_backend_library() -> None:
    """`import hydragent` imports no backend module; asking the registry imports them all,
    and still no client library."""
    import subprocess

    backend_modules = sorted({backends()[key].model.__module__ for key in KEYS})
    heavy = (
        "torch",
        "transformers",
        "litellm",
        "boto3",
        "openai",
        "vllm",
        "mlx",
        "huggingface_hub",
    )
    code = (
        "import sys, hydragent\n"
        f"print(sorted(m for m in {backend_modules!r} if m in sys.modules))\n"
        "from hydragent.models.registry import backends\n"
        "backends()\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["[]", "[]"], done.stdout
