"""One request through one backend, run inside a venv that has only that backend's extra.

Usage: python .ci/extras_check.py EXTRA URL. Checks that the answer, its reasoning and its
usage arrive, and that the other backends' client libraries are absent (so the extra really
works alone, without `all`).
"""

from __future__ import annotations

import importlib.util
import sys

from hydragent.models import Model

LIBRARIES = {"openai": "openai", "hf": "huggingface_hub", "litellm": "litellm", "bedrock": "boto3"}


def build(extra: str, url: str) -> Model:
    if extra == "openai":
        from hydragent.models import OpenAIServerModel

        return OpenAIServerModel("m", api_base=f"{url}/v1", api_key="sk-ci")
    if extra == "hf":
        from hydragent.models import InferenceClientModel

        return InferenceClientModel("m", base_url=f"{url}/v1", token="hf_ci")
    if extra == "litellm":
        from hydragent.models import LiteLLMModel

        return LiteLLMModel("openai/m", api_base=f"{url}/v1", api_key="sk-ci")
    from hydragent.models import AmazonBedrockServerModel

    client_kwargs = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIDCI",
        "aws_secret_access_key": "ci",
    }
    return AmazonBedrockServerModel("us.amazon.nova-lite-v1:0", client_kwargs=client_kwargs)


def main() -> None:
    extra, url = sys.argv[1], sys.argv[2]
    others = [lib for name, lib in LIBRARIES.items() if name != extra and lib != LIBRARIES[extra]]
    present = [lib for lib in others if importlib.util.find_spec(lib) is not None]
    if extra != "litellm" and present:  # litellm itself depends on openai
        sys.exit(f"[{extra}] the venv also has {', '.join(present)}: not the extra alone")
    model = build(extra, url)
    message = model.generate([{"role": "user", "content": "hi"}])
    problems = []
    if message.content != "Hello from the loopback server.":
        problems.append(f"content {message.content!r}")
    if extra != "hf" and not message.reasoning_content:  # huggingface_hub drops the field
        problems.append("no reasoning_content")
    if not message.token_usage.output_tokens:
        problems.append("no usage")
    if problems:
        sys.exit(f"[{extra}] {type(model).__name__}: " + "; ".join(problems))
    print(f"[{extra}] {type(model).__name__}: ok ({message.token_usage.output_tokens} tokens)")


if __name__ == "__main__":
    main()
