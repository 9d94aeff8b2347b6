"""What the in-process backends (Transformers, MLX, vLLM) share: prompts, stops and usage.

Each of them renders the chat with a tokenizer's template (or a declared fallback), maps the
generation node, stops on end-of-turn tokens and stop strings, splits `<think>` reasoning
from the answer, and counts tokens itself; keeping that here means the backend modules only
differ in how they run the model. Messages arrive prepared by `Model.build_request` (roles
converted once: the tool roles become assistant/user through `wire_roles`).

`local_prompt` is the one preparation of a call for all three; its token-limit rule is one:
a call's or the model's `max_new_tokens`, else its `max_tokens`, else the model's own limit
(constructor), else `generation.max_tokens`, else the engine's default.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from hydragent.generation import GenerationConfig
from hydragent.messages import ChatMessage, ChatMessageStreamDelta, content_to_text
from hydragent.messages.reasoning import THINK_OPEN, ReasoningSplitter, split_reasoning
from hydragent.models.base import Model, ModelRequest
from hydragent.models.chat_templates import (
    END_MARKERS,
    OPENS_WITH_SPACE,
    TEMPLATES,
    TURN_STOPS,
    resolve_template,
    template_name,
)
from hydragent.models.spec import Applied, GenerationMap, Native, apply_generation
from hydragent.models.text import StopScanner, get_tool_json_schema, trim_at_stop

logger = logging.getLogger("hydragent.models")

#: how a local engine applies what is not a sampler keyword.
LIMIT = Applied("the engine's token limit (see local_prompt)")
STOPS = Applied("stop strings and end-of-turn tokens, cut locally")
THINKING = Applied("the chat template's enable_thinking / reasoning_effort")


def local_generation(**sampler: Native) -> GenerationMap:
    """A local engine's generation mapping: its sampler's `names` (portable -> keyword), the
    limit, stops and reasoning it applies itself, and nothing else."""
    names: dict[str, Native] = dict.fromkeys(GenerationConfig.model_fields)
    names.update(max_tokens=LIMIT, stop=STOPS, reasoning_effort=THINKING, reasoning_tokens=THINKING)
    names.update(sampler)
    return names


@dataclasses.dataclass
class LocalPrompt:
    """One call, ready for a local engine: the rendered prompt's ids, the engine keywords
    (generation node applied), the token limit, and how to read the reply."""

    ids: list[int]
    settings: dict[str, Any]
    max_tokens: int | None
    stops: list[str]
    thinking: bool  # the prompt opened a <think> block
    lstrip: bool  # the plain template: answers open with a space to drop


def local_settings(
    model: Model, req: ModelRequest, own_limit: int | None, default_limit: int | None
) -> tuple[dict[str, Any], int | None, dict[str, Any]]:
    """(engine keywords, token limit, the call's chat_template_kwargs) of a call; see the
    module's docstring for the token-limit rule."""
    settings = model.settings(req)
    template_kwargs = settings.pop("chat_template_kwargs", None) or {}
    limits = (
        settings.pop("max_new_tokens", None),
        settings.pop("max_tokens", None),
        own_limit,
        req.generation.get("max_tokens"),
        default_limit,
    )
    apply_generation(settings, req.generation, model.generation_names() or {})
    return settings, next((v for v in limits if v is not None), None), template_kwargs


def template_kwargs_for(
    model: Any, req: ModelRequest, source: str, call_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The chat-template variables: reasoning settings, then the model's own
    `apply_chat_template_kwargs`, then the call's (which win)."""
    return {
        **thinking_kwargs(req.generation, source, type(model).__name__),
        **model.apply_chat_template_kwargs,
        **call_kwargs,
    }


def local_prompt(
    model: Any,
    req: ModelRequest,
    tokenizer: Any,
    template: str | None,
    own_limit: int | None = None,
    default_limit: int | None = None,
) -> LocalPrompt:
    """The one preparation of a text call for a local engine (Transformers, MLX, vLLM)."""
    settings, limit, call_kwargs = local_settings(model, req, own_limit, default_limit)
    source = template_source(tokenizer, template)
    prompt = render_prompt(
        tokenizer,
        template_messages(req.messages, type(model).__name__),
        template,
        req.tools,
        template_kwargs_for(model, req, source, call_kwargs),
    )
    return LocalPrompt(
        ids=encode_prompt(tokenizer, prompt),
        settings=settings,
        max_tokens=limit,
        stops=stops_for(template, req.stop_sequences),
        thinking=opens_thinking(prompt),
        lstrip=answer_opens_with_space(template),
    )


def read_tool_calls(model: Model, message: ChatMessage, req: ModelRequest) -> ChatMessage:
    """With tools offered, the tool call a local model wrote as JSON text, read into
    `tool_calls`. A reply with no readable call stays text: the agent's own
    `parse_tool_calls` then shows the model why, and it can try again, as it does with the API
    backends' replies (a local reply is never a failed sample for its wording)."""
    if not req.tools:
        return message
    try:
        return model.parse_tool_calls(message)
    except ValueError:
        return message


def template_messages(messages: list[dict[str, Any]], backend: str) -> list[dict[str, Any]]:
    """Prepared messages as a text model's chat template takes them: string content, tool
    calls as plain dicts. Images are refused with the way to send them."""
    rendered = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            if any(part.get("type") != "text" for part in content):
                raise ValueError(
                    f"{backend} runs a text-only model, which cannot take images; "
                    "load an image-text-to-text model (TransformersModel does so through "
                    "AutoProcessor when the checkpoint is one)"
                )
            content = content_to_text(content)
        entry = {**message, "content": content or ""}
        if message.get("tool_calls"):
            entry["tool_calls"] = [_call_dict(call) for call in message["tool_calls"]]
        rendered.append(entry)
    return rendered


def _call_dict(call: Any) -> dict[str, Any]:
    return call.dict() if hasattr(call, "dict") and callable(call.dict) else dict(call)


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


def template_source(tokenizer: Any, template: str | None) -> str:
    """The Jinja text a prompt is rendered with (the chosen one, else the tokenizer's)."""
    if template is not None:
        return template
    own = getattr(tokenizer, "chat_template", None) or ""
    return "\n".join(own.values()) if isinstance(own, Mapping) else str(own)


def thinking_kwargs(generation: Mapping[str, Any], template: str, backend: str) -> dict[str, Any]:
    """The chat-template variables that carry the generation node's reasoning settings.

    Qwen3-style templates take `enable_thinking` (off only for reasoning_effort=minimal),
    gpt-oss-style ones `reasoning_effort` (low/medium/high; minimal becomes low). A template
    that takes neither is left alone, with a warning that the setting has no effect.
    """
    effort = generation.get("reasoning_effort")
    budget = generation.get("reasoning_tokens")
    if effort is None and budget is None:
        return {}
    kwargs: dict[str, Any] = {}
    if "enable_thinking" in template:
        kwargs["enable_thinking"] = effort != "minimal"
    if "reasoning_effort" in template and effort is not None:
        kwargs["reasoning_effort"] = "low" if effort == "minimal" else effort
    if not kwargs:
        logger.warning(
            "%s: generation.reasoning_effort/reasoning_tokens have no effect: this model's chat "
            "template takes neither enable_thinking nor reasoning_effort",
            backend,
        )
    return kwargs


def stops_for(template: str | None, stop_sequences: list[str] | None) -> list[str]:
    """The caller's stop sequences plus the declared template's next-turn markers."""
    stops = [s for s in stop_sequences or [] if s]
    extra = TURN_STOPS.get(template_name(template) or "", ())
    return stops + [s for s in extra if s not in stops]


def answer_opens_with_space(template: str | None) -> bool:
    """The plain template ends with "Assistant:", so answers start with a space to drop."""
    return template_name(template) in OPENS_WITH_SPACE


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


def opens_thinking(prompt: str) -> bool:
    """Whether the template wrote `<think>` itself (DeepSeek-R1), so the reply starts inside
    the reasoning block."""
    return prompt.rstrip().endswith(THINK_OPEN)


def finish_text(
    text: str, thinking: bool, stop_sequences: Iterable[str], lstrip: bool
) -> tuple[str | None, str]:
    """A whole reply's `(reasoning, answer)`: `<think>` split off, the answer cut at the first
    stop and, after the plain template's "Assistant:", its opening space dropped."""
    reasoning, content = split_reasoning(text, thinking=thinking)
    content = trim_at_stop(content, list(stop_sequences)) or ""
    return reasoning, content.lstrip() if lstrip else content


class TextStream:
    """A streamed reply: `<think>` reasoning split off, then stop strings held back and cut."""

    def __init__(self, thinking: bool, stop_sequences: list[str], lstrip: bool) -> None:
        self._splitter = ReasoningSplitter(thinking=thinking)
        self._scanner = StopScanner(stop_sequences, lstrip=lstrip)

    @property
    def stopped(self) -> bool:
        return self._scanner.stopped

    def feed(self, text: str) -> list[ChatMessageStreamDelta]:
        return self._deltas(*self._splitter.feed(text), final=False)

    def flush(self) -> list[ChatMessageStreamDelta]:
        return self._deltas(*self._splitter.flush(), final=True)

    def _deltas(self, reasoning: str, content: str, final: bool) -> list[ChatMessageStreamDelta]:
        deltas = [ChatMessageStreamDelta(reasoning_content=reasoning)] if reasoning else []
        text = self._scanner.feed(content)
        if final:
            text += self._scanner.flush()
        if text:
            deltas.append(ChatMessageStreamDelta(content=text))
        return deltas


def count_tokens(tokenizer: Any, text: str | None) -> int:
    """Tokens in `text` (reasoning is counted by re-encoding it: engines do not mark it)."""
    return len(tokenizer.encode(text, add_special_tokens=False)) if text else 0


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


def missing_model_path(
    model_id: str | None, what: str = "model_id", needs_config: bool = True
) -> list[tuple[str, str]]:
    """A problem when `model_id` names a local folder that is not there, or one without the
    model's config.json (when `needs_config`: a GGUF file needs none). A hub id is checked
    only offline (HF_HUB_OFFLINE), against the local cache, since checking it online costs a
    request."""
    path = os.path.expanduser(model_id or "")
    config = os.path.join(path, "config.json")
    if model_id and needs_config and os.path.isdir(path) and not os.path.isfile(config):
        return [(what, f"{model_id} is a folder without config.json: not a model folder")]
    if not model_id or os.path.exists(path):
        return []
    if model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1:  # a path, not a hub id
        return [(what, f"no such folder: {model_id} (give a local model folder or a hub id)")]
    if os.environ.get("HF_HUB_OFFLINE") and importlib.util.find_spec("huggingface_hub"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model_id, "config.json"), str):
            return [
                (
                    what,
                    f"{model_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
                    "download it first or unset HF_HUB_OFFLINE",
                )
            ]
    return []
