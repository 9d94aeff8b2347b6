"""LiteLLMModel: one interface to 100+ providers through `litellm.completion`.

LiteLLM's own retries are off (`num_retries=0`, `max_retries=0`) so that the `retry` policy is
the only one. `LITELLM_LOCAL_MODEL_COST_MAP=True` is set before the import so that importing
litellm never reaches the network.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any

from hydragent.models.chat_completions import (
    CHAT_GENERATION_NAMES,
    REASONING_GENERATION_NAMES,
    ChatCompletionsModel,
    chat_generation,
)
from hydragent.models.errors import extra_problems, missing_extra
from hydragent.models.spec import BackendSpec, Field, GenerationMap, declare, thinking_block

#: smolagents' fallback when no model_id is given.
DEFAULT_MODEL_ID = "anthropic/claude-3-5-sonnet-20240620"
#: providers whose chat templates want each message's content as one string.
FLATTENING_PREFIXES = ("ollama", "groq", "cerebras")
#: The sampling parameters litellm refuses (UnsupportedParamsError, on every call) where a
#: provider lacks them: the native names of the generation node's settings.
SAMPLING_PARAMS = frozenset(
    name for names in (CHAT_GENERATION_NAMES, REASONING_GENERATION_NAMES) for name in names.values()
) - {None}


def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as error:
        raise missing_extra(LiteLLMModel) from error
    litellm.suppress_debug_info = True  # no "Give Feedback" banner on every failure
    return litellm


def unknown_providers(models: list[str], fix: str) -> list[str]:
    """One line per model id whose provider litellm cannot tell (`gpt4` instead of
    `openai/gpt-4o`): every call to it would fail before reaching any server."""
    litellm = import_litellm()
    lines = []
    for model in models:
        try:
            litellm.get_llm_provider(model=model)
        except Exception:  # litellm raises its BadRequestError (and others) for these
            lines.append(
                f"litellm cannot tell the provider of {model!r}: write it as provider/model, "
                f"e.g. openai/gpt-4o-mini or ollama/llama3 ({fix})"
            )
    return lines


def missing_credentials(models: list[str], fix: str = "model.api_key") -> list[str]:
    """One line per model whose provider key is not in the environment (endpoints, which
    have defaults, are not counted)."""
    litellm = import_litellm()
    lines = []
    for model in models:
        found = litellm.validate_environment(model=model)
        keys = [key for key in found.get("missing_keys") or [] if not key.endswith("_API_BASE")]
        if keys:
            lines.append(f"{model} needs {' and '.join(keys)} in the environment, or {fix}")
    return lines


def params_litellm_sends(models: list[str], provider: str | None) -> frozenset[str] | None:
    """The OpenAI-style parameters litellm passes to every one of `models` (it refuses the
    others, on every call); None when litellm cannot say for one of them."""
    litellm = import_litellm()
    common: set[str] | None = None
    for model in models:
        try:
            found = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider)
        except Exception:  # an unknown provider: environment_problems names it
            return None
        if not found:
            return None
        common = set(found) if common is None else common & set(found)
    return frozenset(common) if common is not None else None


class LiteLLMModel(ChatCompletionsModel):
    """`litellm.completion` with `api_base`/`api_key`; flattening defaults on for
    `ollama/`, `groq/` and `cerebras/` ids."""

    def __init__(
        self,
        model_id: str | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if not model_id:
            warnings.warn(
                f"LiteLLMModel without model_id uses {DEFAULT_MODEL_ID!r} (as smolagents does); "
                "pass model_id, e.g. 'openai/gpt-4o-mini'",
                FutureWarning,
                stacklevel=2,
            )
            model_id = DEFAULT_MODEL_ID
        self.api_base = api_base
        self.api_key = api_key
        if flatten_messages_as_text is None:
            flatten_messages_as_text = model_id.startswith(FLATTENING_PREFIXES)
        super().__init__(
            model_id=model_id,
            custom_role_conversions=custom_role_conversions,
            flatten_messages_as_text=flatten_messages_as_text,
            **kwargs,
        )
        self.build_client()

    def create_client(self) -> Any:
        return import_litellm()

    def environment_problems(self) -> list[tuple[str, str]]:
        problems = extra_problems(self)
        if problems:
            return problems
        if "custom_llm_provider" not in self.kwargs:
            problems += [
                ("model_id", line)
                for line in unknown_providers(self.answering_models(), "model.model_id")
            ]
        supported = self.supported_params
        if supported is not None:  # keys the user set on the model, which win over generation.*
            takes = ", ".join(sorted(SAMPLING_PARAMS & supported))
            problems += [
                (
                    key,
                    f"litellm refuses {key} for {', '.join(self.answering_models())} on every "
                    f"call (it takes {takes}): remove model.{key}, or set model.drop_params=true",
                )
                for key in sorted(SAMPLING_PARAMS & set(self.kwargs) - supported)
            ]
        if problems or self.api_key:
            return problems
        # litellm's openai/ provider wants a key even from a local api_base (every call
        # failed on 'Missing credentials'); a keyless server takes any placeholder
        fix = "model.api_key (e.g. EMPTY for a keyless local server)" if self.api_base else None
        missing = missing_credentials(self.answering_models(), *([fix] if fix else []))
        return [("api_key", line) for line in missing]

    @functools.cached_property
    def supported_params(self) -> frozenset[str] | None:
        """What litellm passes on to the answering models (None: it cannot say, or it is
        told to drop the rest with `drop_params`, or litellm is missing in a dry build)."""
        if self.kwargs.get("drop_params"):
            return None
        try:
            provider = self.kwargs.get("custom_llm_provider")
            return params_litellm_sends(self.answering_models(), provider)
        except ImportError:
            return None

    def answering_models(self) -> list[str]:
        """The litellm model ids that may answer a call."""
        return [str(self.model_id)]

    def apply_seed(self, seed: int) -> None:
        """Only when every model that may answer takes `seed`: litellm rejects it for the
        other providers (e.g. `anthropic/`). Without litellm installed (a dry build),
        nothing: `environment_problems()` names the missing extra."""
        if self.supported_params is not None and "seed" in self.supported_params:
            super().apply_seed(seed)

    def send(self, body: dict[str, Any]) -> Any:
        return self.client.completion(**body)

    def connection_kwargs(self) -> dict[str, Any]:
        """Endpoint and retry settings for one `litellm.completion` call."""
        return {
            "api_base": self.api_base,
            "api_key": self.api_key,
            "num_retries": 0,
            "max_retries": 0,
        }


def litellm_generation(model: LiteLLMModel) -> GenerationMap:
    """OpenAI's names (litellm translates `reasoning_effort` for each provider) and a thinking
    budget as litellm's `thinking` (Anthropic, Bedrock, Gemini), less the names litellm would
    refuse for these models: those are not sent, and validate says so."""
    names: dict[str, Any] = {
        **chat_generation(model),
        "reasoning_effort": "reasoning_effort",
        "reasoning_tokens": Field("thinking", thinking_block),
    }
    supported = model.supported_params
    if supported is None:
        return names
    return {key: _if_supported(key, native, supported) for key, native in names.items()}


def _if_supported(key: str, native: Any, supported: frozenset[str]) -> Any:
    """`native`, or None where litellm refuses its body field for these models (a `thinking`
    budget for an openai/ model failed every call with UnsupportedParamsError)."""
    if key == "stop" or native is None:
        return native
    field = native.path if isinstance(native, Field) else native
    return native if field.split(".")[0] in supported else None


BACKEND = declare(
    BackendSpec(
        key="litellm",
        model=LiteLLMModel,
        extra="litellm",
        modules=("litellm",),
        generation=litellm_generation,
        grammars=frozenset({"json_object", "json_schema"}),
        native_tools=True,
        streaming=True,
        images=True,
        reasoning=True,
        helpers=frozenset({"retry"}),
    )
)
