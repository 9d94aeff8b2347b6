"""What a backend declares about itself, in one typed object beside its class.

A backend module ends with `BACKEND = declare(BackendSpec(...))`: its config key, class,
capabilities, generation mapping, the helper groups it accepts, its client constructor, its
pip extra and the fixes for its own errors. Everything else asks that declaration (through
models/registry.py): config/ and runner/ name no backend. The model-family facts are data,
as in pydantic-ai's profiles, not branches spread over the code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

#: helper groups every model takes; the others are declared by the backends that take them.
UNIVERSAL_HELPERS = ("roles", "messages")


@dataclasses.dataclass(frozen=True)
class Field:
    """Where a portable generation setting goes in a backend's request: a dotted path into
    the body (`extra_body.top_k`, `inferenceConfig.maxTokens`), its value converted by
    `convert` when the wire wants another shape (a thinking budget as a `thinking` block)."""

    path: str
    convert: Callable[[Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Applied:
    """A portable setting the backend applies in its own code rather than as a body field
    (a local engine's stop strings, reasoning through the chat template); `how` says how."""

    how: str


#: portable name -> where it goes: a body key, a Field, Applied, or None (not sent).
Native: TypeAlias = str | Field | Applied | None
GenerationMap: TypeAlias = Mapping[str, Native]


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """One backend, declared once. `generation` covers every `GenerationConfig` field (a map,
    or a function of the instance where the model id decides, as for OpenAI's reasoning
    models); what a backend sends is derived from it, and validate names what it does not."""

    key: str  # the conf/model option: `model=<key>`
    model: type  # the Model subclass
    extra: str | None  # pip install 'hydragent[<extra>]'; None: no extra needed
    generation: GenerationMap | Callable[[Any], GenerationMap]
    modules: tuple[str, ...] = ()  # import names the extra provides
    grammars: frozenset[str] = frozenset()
    native_tools: bool = False
    streaming: bool = False
    images: bool = False
    reasoning: bool = False
    helpers: frozenset[str] = frozenset()  # beyond UNIVERSAL_HELPERS: retry, router, ...
    client: str | None = None  # "module:Class" that `client_kwargs` are passed to
    fixes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # fragment -> fix

    def generation_for(self, model: Any) -> GenerationMap:
        """The generation mapping of one instance."""
        return self.generation(model) if callable(self.generation) else self.generation


def declare(spec: BackendSpec) -> BackendSpec:
    """Attach `spec` to its class: the class's capability attributes are read from it, so a
    capability is stated once. Returns the spec, for `BACKEND = declare(BackendSpec(...))`."""
    cls = spec.model
    cls.declaration = spec
    cls.supported_grammars = frozenset(spec.grammars)
    cls.native_tools = spec.native_tools
    cls.takes_images = spec.images
    cls.returns_reasoning = spec.reasoning
    return spec


def declaration_of(cls: type) -> BackendSpec | None:
    """The declaration of a backend class, or of the backend a user's subclass extends."""
    return getattr(cls, "declaration", None)


def sent_names(names: GenerationMap) -> frozenset[str]:
    """The portable names a mapping sends (or applies)."""
    return frozenset(key for key, native in names.items() if native is not None)


def apply_generation(
    settings: dict[str, Any], generation: Mapping[str, Any], names: GenerationMap
) -> dict[str, Any]:
    """Add the generation node's settings to `settings` where `names` puts them; a setting
    already there, by its portable or its native name, wins (the call's and the model's keys
    beat the generation node). `Applied` and unnamed settings are left to the backend."""
    for key, value in generation.items():
        native = names.get(key)
        if native is None or isinstance(native, Applied) or key in settings:
            continue
        field = native if isinstance(native, Field) else Field(native)
        *parents, leaf = field.path.split(".")
        target: Any = settings
        for parent in parents:
            held = target.get(parent)
            if held is not None and not isinstance(held, Mapping):
                break  # the user set the whole parent to something else: theirs stands
            target[parent] = target = dict(held or {})
        else:
            if leaf not in target:
                target[leaf] = field.convert(value) if field.convert else value
    return settings


def thinking_block(budget: Any) -> dict[str, Any]:
    """A thinking budget as Anthropic-style `thinking` (LiteLLM and Bedrock both take it)."""
    return {"type": "enabled", "budget_tokens": budget}
