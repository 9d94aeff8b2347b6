"""smolagents' helper methods on `Model`, for subclasses and callers written against it.

`Model` inherits them; the request path (base.py) does not use them. They are kept apart so
that the contract reads as one layer, and so that the OpenAI wire format they need (for
`_prepare_completion_kwargs`) is imported from here, never from the contract.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator
from typing import Any

from hydragent.messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCallStreamDelta,
    content_to_text,
)
from hydragent.models.text import get_tool_json_schema
from hydragent.models.wire.openai import to_openai_messages
from hydragent.secrets import is_secret_key, mask_secrets


class _RemoveParameter:
    """Sentinel: an instance kwarg set to REMOVE_PARAMETER drops that key from the request."""

    def __repr__(self) -> str:
        return "REMOVE_PARAMETER"


REMOVE_PARAMETER = _RemoveParameter()


class SmolagentsCompat:
    """`completion_kwargs`, `_prepare_completion_kwargs`, `to_dict` and `from_dict`, as
    smolagents' `Model` has them; they read what `Model.__init__` sets."""

    def completion_kwargs(
        self, explicit: dict[str, Any], call_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Explicit arguments, overlaid by call kwargs, overlaid by instance kwargs (which win);
        REMOVE_PARAMETER drops a key, None-valued explicit keys are omitted (smolagents'
        merge; hydragent's backends use `Model.settings(req)`)."""
        merged = {k: v for k, v in explicit.items() if v is not None}
        merged.update(call_kwargs)
        merged.update(self.kwargs)
        return {k: v for k, v in merged.items() if v is not REMOVE_PARAMETER}

    def _prepare_completion_kwargs(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        convert_images_to_image_urls: bool = False,
        tool_choice: str | dict[str, Any] | None = "required",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """smolagents' helper, for subclasses written against it: OpenAI-style completion
        keywords (messages, stop, response_format, tools, tool_choice, then call keywords,
        then the constructor's, which win; REMOVE_PARAMETER drops a key)."""
        flatten = kwargs.pop("flatten_messages_as_text", self.flatten_messages_as_text)
        prepared = self.prepare(
            messages,
            images_as_urls=convert_images_to_image_urls,
            flatten=flatten,
            role_conversions=custom_role_conversions,
        )
        completion: dict[str, Any] = {"messages": to_openai_messages(prepared)}
        if stop_sequences is not None and self.supports_stop_parameter:
            completion["stop"] = stop_sequences
        if response_format is not None:
            completion["response_format"] = response_format
        if tools_to_call_from:
            completion["tools"] = [get_tool_json_schema(tool) for tool in tools_to_call_from]
            if tool_choice is not None:
                completion["tool_choice"] = tool_choice
        completion.update(kwargs)
        for key, value in self.kwargs.items():
            if value is REMOVE_PARAMETER:
                completion.pop(key, None)
            else:
                completion[key] = value
        return completion

    # Serialisation: what was configured, never a secret.
    def to_dict(self: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"class": type(self).__name__}
        for name in _init_parameter_names(type(self)):
            if is_secret_key(name) or name in ("client", "kwargs"):
                continue
            if hasattr(self, name):
                value = getattr(self, name)
                if _is_plain(value):
                    data[name] = value
        if self.generation is not None:
            data["generation"] = self.generation.model_dump(exclude_none=True)
        data.update(mask_secrets({k: v for k, v in self.kwargs.items() if _is_plain(v)}))
        _register_with_smolagents(type(self))
        return {k: v for k, v in data.items() if not is_secret_key(k)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        params = {k: v for k, v in data.items() if k != "class"}
        return cls(**params)


# --- smolagents-style subclasses: `generate` overridden instead of `request` -------------


def _owner(cls: type, name: str) -> type:
    return next(klass for klass in cls.__mro__ if name in klass.__dict__)


def overrides_generate(cls: type, generate: str = "generate", request: str = "request") -> bool:
    """Whether `cls` customises `generate` below the class that implements `request` (a
    subclass written the smolagents way, e.g. one that times or logs its calls)."""
    generate_owner, request_owner = _owner(cls, generate), _owner(cls, request)
    return generate_owner is not request_owner and issubclass(generate_owner, request_owner)


def call_arguments(req: Any) -> dict[str, Any]:
    """A `ModelRequest` as `generate` keywords, for a model whose `generate` is its entry."""
    arguments: dict[str, Any] = {
        "stop_sequences": req.stop_sequences,
        "tools_to_call_from": req.tools,
    }
    if req.grammar is not None:
        arguments["grammar"] = req.grammar
    return {**arguments, **req.kwargs}


def message_as_delta(message: ChatMessage) -> Iterator[ChatMessageStreamDelta]:
    """A whole reply as a stream of one delta (tool calls indexed in order)."""
    calls = [
        ChatMessageToolCallStreamDelta(index=i, id=c.id, type=c.type, function=c.function)
        for i, c in enumerate(message.tool_calls or [])
    ]
    yield ChatMessageStreamDelta(
        content=content_to_text(message.content) if message.content is not None else None,
        tool_calls=calls or None,
        token_usage=message.token_usage,
        reasoning_content=message.reasoning_content,
    )


def _register_with_smolagents(cls: type) -> None:
    """Let smolagents' `Agent.from_dict` find this class: it looks the model's class name up
    in `smolagents.models.MODEL_REGISTRY`. Only when smolagents is already in use."""
    registry = getattr(sys.modules.get("smolagents.models"), "MODEL_REGISTRY", None)
    if isinstance(registry, dict):
        registry[cls.__name__] = cls


def _init_parameter_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for param in inspect.signature(init).parameters.values():
            if (
                param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
                and param.name != "self"
            ) and param.name not in names:
                names.append(param.name)
    return names


def _is_plain(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
