"""Portable sampling settings: the `generation` config node, mapped by each backend.

Recipes and users set these once (`generation.max_tokens=256`); every backend translates them
to its own parameter names in its `request()` (OpenAI `max_tokens` or `max_completion_tokens`,
Bedrock `inferenceConfig.maxTokens`, Transformers `max_new_tokens`, ...). A backend's own
constructor keys and per-call keywords win over this node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ReasoningEffort = Literal["minimal", "low", "medium", "high"]


#: a seed's range, 0 <= seed < 2**32: numpy's and transformers' seeding take an unsigned
#: 32-bit integer, and a larger one failed every sample of the run (`Overflow when unpacking
#: long long`) after validate said OK. APIs that take a seed take this range too.
SEED_LIMIT = 2**32


def _seed_in_range(seed: int) -> int:
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(
            f"a seed is 0 <= seed < 2**32 ({SEED_LIMIT}): numpy and transformers seed with an "
            f"unsigned 32-bit integer; choose one in that range"
        )
    return seed


#: a seed, range-checked (the top-level `seed` and `generation.seed`)
Seed = Annotated[int, AfterValidator(_seed_in_range)]


class GenerationConfig(BaseModel):
    """Sampling settings every backend understands; None means "the backend's default"."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    max_tokens: int | None = Field(1024, ge=1, description="most tokens to generate")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    stop: list[str] | None = Field(None, description="extra stop sequences, after the call's own")
    seed: Seed | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    reasoning_effort: ReasoningEffort | None = Field(
        None, description="reasoning models' effort (OpenAI o-series, gpt-5, LiteLLM)"
    )
    reasoning_tokens: int | None = Field(
        None, ge=1, description="thinking budget in tokens (Bedrock/Anthropic thinking)"
    )

    @classmethod
    def coerce(cls, value: GenerationConfig | Mapping[str, Any] | None) -> GenerationConfig | None:
        """A GenerationConfig from a config node (a Mapping, e.g. a DictConfig) or None."""
        if value is None or isinstance(value, GenerationConfig):
            return value
        if isinstance(value, Mapping):
            return cls(**{str(k): _plain(v) for k, v in value.items()})
        raise TypeError(
            f"generation must be a GenerationConfig or a mapping, got {type(value).__name__}"
        )

    def settings(self) -> dict[str, Any]:
        """The keys that are set (not None), by their portable names."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _plain(value: Any) -> Any:
    """A config list (e.g. OmegaConf's ListConfig) as a plain list, for pydantic."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return value
