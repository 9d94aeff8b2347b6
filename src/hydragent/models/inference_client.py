"""InferenceClientModel: Hugging Face inference providers, or a TGI/OpenAI-style server by URL.

Unlike smolagents, `response_format` is really sent, and `base_url` works together with
`model_id`: the client is built on the URL and the model id travels in the request body.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

from hydragent.grammar import Grammar
from hydragent.models.chat_completions import ChatCompletionsModel, chat_generation
from hydragent.models.errors import extra_problems, missing_extra
from hydragent.models.spec import BackendSpec, Field, GenerationMap, declare

#: providers whose chat completions enforce `response_format` (a base_url server is trusted).
STRUCTURED_OUTPUT_PROVIDERS = ("cerebras", "fireworks-ai")


class InferenceClientModel(ChatCompletionsModel):
    """`huggingface_hub.InferenceClient` chat completions; `api_key` is an alias for `token`.

    Grammars are a per-instance capability: only the providers in STRUCTURED_OUTPUT_PROVIDERS
    (or a server given by `base_url`) enforce them, so `provider="auto"` has none.
    """

    def __init__(
        self,
        model_id: str = "Qwen/Qwen3-Next-80B-A3B-Thinking",
        provider: str | None = None,
        token: str | None = None,
        timeout: int = 120,
        client_kwargs: dict[str, Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        api_key: str | None = None,
        bill_to: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        if token is not None and api_key is not None:
            raise ValueError(
                "Received both `token` and `api_key` arguments. Please provide only one of "
                "them. (`api_key` is an alias for `token` to make the API compatible with "
                "OpenAI's client.)"
            )
        self.token = token if token is not None else api_key
        self.provider = provider
        self.timeout = timeout
        self.bill_to = bill_to
        self.base_url = base_url
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(
            model_id=model_id, custom_role_conversions=custom_role_conversions, **kwargs
        )
        self.build_client()

    def create_client(self) -> Any:
        try:
            from huggingface_hub import InferenceClient
        except ImportError as error:
            raise missing_extra(self) from error
        target = (
            {"base_url": self.base_url}
            if self.base_url
            else {"model": self.model_id, "provider": self.provider}
        )
        return InferenceClient(
            **{
                **target,
                "token": self.token or os.environ.get("HF_TOKEN"),
                "timeout": self.timeout,
                "bill_to": self.bill_to,
                **self.client_kwargs,
            }
        )

    def environment_problems(self) -> list[tuple[str, str]]:
        problems = extra_problems(self)
        if self._client is None and not (self.base_url or self.token or _hf_token()):
            problems.append(
                (
                    "token",
                    "InferenceClientModel needs a Hugging Face token: set HF_TOKEN or "
                    "model.token (or `hf auth login`), or point model.base_url at a local server",
                )
            )
        return problems

    def grammar_types(self) -> frozenset[str]:
        if self.base_url or self.provider in STRUCTURED_OUTPUT_PROVIDERS:
            return frozenset(self.supported_grammars)
        return frozenset()

    def grammar_error(self, grammar: Grammar) -> str:
        return (
            "InferenceClientModel only supports structured outputs with these providers: "
            f"{', '.join(STRUCTURED_OUTPUT_PROVIDERS)} (or a TGI/vLLM server via base_url); "
            f"grammar={grammar.type} cannot be enforced with provider={self.provider or 'auto'}"
        )

    def request_model_id(self) -> str | None:
        """A provider client is bound to its model; a base_url client takes it per request."""
        return self.model_id if self.base_url else None

    def send(self, body: dict[str, Any]) -> Any:
        if not self.base_url:
            return self.client.chat_completion(**body)
        with own_server():  # HF_HUB_OFFLINE is about the Hub: the user's server needs none
            return self.client.chat_completion(**body)


_OWN_SERVER: contextvars.ContextVar[bool] = contextvars.ContextVar("hf_own_server", default=False)


@contextlib.contextmanager
def own_server() -> Iterator[None]:
    """Calls made inside go to a server the user named by `base_url`, not to the Hub, so
    HF_HUB_OFFLINE=1 (which huggingface_hub applies to every request it sends) lets them
    through. Per context (thread): Hub calls elsewhere stay offline."""
    from huggingface_hub import constants

    if not getattr(constants.is_offline_mode, "hydragent", False):
        hub_offline = constants.is_offline_mode

        def is_offline_mode() -> bool:
            return False if _OWN_SERVER.get() else hub_offline()

        is_offline_mode.hydragent = True  # type: ignore[attr-defined]
        constants.is_offline_mode = is_offline_mode
    token = _OWN_SERVER.set(True)
    try:
        yield
    finally:
        _OWN_SERVER.reset(token)


def _hf_token() -> str | None:
    """The token huggingface_hub would find (environment or `hf auth login`), if installed."""
    try:
        from huggingface_hub import get_token
    except ImportError:
        return os.environ.get("HF_TOKEN")
    return get_token()


HfApiModel = InferenceClientModel


def hf_generation(model: InferenceClientModel) -> GenerationMap:
    """OpenAI's names; `reasoning_effort`, which `chat_completion` has no parameter for, goes
    in `extra_body` (the HF router and vLLM/TGI servers read it for reasoning models)."""
    return {**chat_generation(model), "reasoning_effort": Field("extra_body.reasoning_effort")}


BACKEND = declare(
    BackendSpec(
        key="inference_client",
        model=InferenceClientModel,
        extra="hf",
        modules=("huggingface_hub",),
        generation=hf_generation,
        grammars=frozenset({"json_object", "json_schema"}),
        native_tools=True,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"retry"}),
        client="huggingface_hub:InferenceClient",
    )
)
