"""Model wrappers the runner puts around a backend, invisible to agents."""

from __future__ import annotations

import threading
from typing import Any

from hydragent.messages import ChatMessage, TokenUsage
from hydragent.models.base import Capabilities, Model, ModelRequest, send_request


class ModelWrapper(Model):
    """Behaves as the wrapped model: every attribute and helper (parse_tool_calls, prepare,
    supported_grammars, capabilities...) is the inner model's. `generate` is Model's own: the
    inner model builds the request, and subclasses change only `request(req)`."""

    def __init__(self, inner: Model) -> None:  # no Model.__init__: its state is inner's
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def supported_grammars(self) -> frozenset[str]:  # type: ignore[override]
        return self.inner.supported_grammars

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @property
    def supports_stop_parameter(self) -> bool:
        return self.inner.supports_stop_parameter

    def environment_problems(self) -> list[tuple[str, str]]:
        return self.inner.environment_problems()

    def build_request(self, *args: Any, **kwargs: Any) -> ModelRequest:
        return self.inner.build_request(*args, **kwargs)

    def request(self, req: ModelRequest) -> ChatMessage:
        return send_request(self.inner, req)

    def parse_tool_calls(self, message: ChatMessage) -> ChatMessage:
        return self.inner.parse_tool_calls(message)

    def prepare(self, messages: list[Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self.inner.prepare(messages, *args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return self.inner.to_dict()

    def cleanup(self) -> None:
        self.inner.cleanup()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class UsageMeter(ModelWrapper):
    """Counts the tokens the wrapped model spends on each thread. The judge is shared by every
    sample, but a sample is scored on its own worker thread, so `take` after scoring gives
    exactly that sample's judge tokens."""

    def __init__(self, inner: Model) -> None:
        super().__init__(inner)
        self._spent = threading.local()

    def request(self, req: ModelRequest) -> ChatMessage:
        reply = send_request(self.inner, req)
        self._spent.usage = getattr(self._spent, "usage", TokenUsage()) + reply.token_usage
        return reply

    def take(self) -> TokenUsage:
        """This thread's tokens since the last `take`, and start counting afresh."""
        spent = getattr(self._spent, "usage", TokenUsage())
        self._spent.usage = TokenUsage()
        return spent
