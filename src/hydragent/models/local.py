"""What the in-process backends (Transformers, MLX, vLLM) share: prompts, stops and usage.

Each of them renders the chat with a tokenizer's template (or a declared fallback), stops on
end-of-turn tokens and stop strings, and counts tokens itself; keeping that here means the
backend modules only differ in how they run the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from hydragent.messages import prepare_messages
from hydragent.models.base import TOOL_ROLE_CONVERSIONS, get_tool_json_schema
from hydragent.models.chat_templates import (
    END_MARKERS,
    TEMPLATES,
    TURN_STOPS,
    resolve_template,
    template_name,
)

logger = logging.getLogger("hydragent.models")


def chat_messages(
    messages: list[Any], role_conversions: dict[str, str] | None
) -> list[dict[str, Any]]:
    """Text-only chat dicts; tool roles become assistant/user, as text models expect."""
    return prepare_messages(
        messages,
        role_conversions={**TOOL_ROLE_CONVERSIONS, **(role_conversions or {})},
        flatten_as_text=True,
    )


def pick_template(
    tokenizer: Any, chat_template: str | None, fallback: str, expected: bool = False
) -> str | None:
    """The Jinja template to use: the configured one, else the tokenizer's, else `fallback`.

    `expected` marks a model known to ship no template (the bundled Gemma): no warning then.
    """
    configured = resolve_template(chat_template)
    if configured is not None:
        return configured
    if getattr(tokenizer, "chat_template", None):
        return None
    logger.log(
        logging.INFO if expected else logging.WARNING,
        "tokenizer has no chat template; using the %r fallback (set chat_template=%s to choose)",
        fallback,
        "|".join(TEMPLATES),
    )
    return TEMPLATES[fallback]


def stops_for(template: str | None, stop_sequences: list[str] | None) -> list[str]:
    """The caller's stop sequences plus the declared template's next-turn markers."""
    stops = [s for s in stop_sequences or [] if s]
    extra = TURN_STOPS.get(template_name(template) or "", ())
    return stops + [s for s in extra if s not in stops]


def answer_opens_with_space(template: str | None) -> bool:
    """The plain template ends with "Assistant:", so answers start with a space to drop."""
    return template_name(template) == "plain"


def render_prompt(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    template: str | None,
    tools: list[Any] | None = None,
    template_kwargs: dict[str, Any] | None = None,
) -> str:
    """The prompt text, generation prompt included, with tools given to the template."""
    tool_schemas = [get_tool_json_schema(tool) for tool in tools] if tools else None
    kwargs = {"add_generation_prompt": True, **(template_kwargs or {})}
    if template is not None:
        kwargs["chat_template"] = template
    try:
        return tokenizer.apply_chat_template(messages, tools=tool_schemas, tokenize=False, **kwargs)
    except Exception as error:  # jinja errors surface here with no hint of the cause
        raise ValueError(
            f"chat template failed to render ({type(error).__name__}: {error}); "
            f"choose one with chat_template={'|'.join(TEMPLATES)} or a Jinja string"
        ) from error


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids, adding BOS only when the rendered template did not already write it."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and prompt.startswith(bos))
    return list(tokenizer.encode(prompt, add_special_tokens=add_special))


def stop_token_ids(tokenizer: Any, *eos_sources: Any) -> list[int]:
    """EOS ids from the tokenizer and generation configs, plus known end-of-turn tokens."""
    ids: list[int] = []
    for source in (getattr(tokenizer, "eos_token_id", None), *eos_sources):
        for value in source if isinstance(source, list | tuple | set) else [source]:
            if isinstance(value, int) and value not in ids:
                ids.append(value)
    vocab = tokenizer.get_vocab()
    for marker in {m for markers in END_MARKERS.values() for m in markers}:
        if marker in vocab and vocab[marker] not in ids:
            ids.append(vocab[marker])
    return ids


def cut_at_stop_tokens(tokens: Iterable[int], stops: Iterable[int]) -> tuple[list[int], bool]:
    """Generated tokens up to (excluding) the first stop token, and whether one was seen."""
    stop_set = set(stops)
    kept: list[int] = []
    for token in tokens:
        if token in stop_set:
            return kept, True
        kept.append(token)
    return kept, False
