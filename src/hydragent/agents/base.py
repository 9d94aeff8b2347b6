"""The agent contract the runner relies on: `run(task, model) -> AgentResult`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from hydragent.grammar import Grammar
from hydragent.messages import ChatMessage, TokenUsage
from hydragent.models.base import Model
from hydragent.models.retry import describe_error


@dataclass
class AgentResult:
    """What one sample produced; `messages` is the full transcript as JSON-safe dicts."""

    answer: str | None
    messages: list[dict[str, Any]] = field(default_factory=list)
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    status: Literal["ok", "error"] = "ok"
    error: str | None = None
    steps: int = 0
    deployment: str | None = None


class Agent(ABC):
    """Works on one task with one model. Instances are shared across the runner's threads,
    so per-sample state lives in locals of `run`, never on `self`."""

    @abstractmethod
    def run(
        self,
        task: str,
        model: Model,
        grammar: Grammar | None = None,
        sample: dict[str, Any] | None = None,
    ) -> AgentResult:
        """Work on `task` (the sample's input) and return the answer with its transcript."""


def record(message: ChatMessage) -> dict[str, Any]:
    """A transcript entry for a model reply."""
    return message.dict()


def failed(
    messages: list[dict[str, Any]], usage: TokenUsage, step: int, error: Exception
) -> AgentResult:
    """The result of a sample whose model call failed: the transcript so far is kept, with
    the error as its last entry, so a failed sample shows what was sent."""
    cause = describe_error(error)
    entry: dict[str, Any] = {"role": "assistant", "content": None, "step": step, "error": cause}
    if getattr(error, "raw_reply", None) is not None:  # what the model sent, e.g. off-grammar
        entry["raw_reply"] = error.raw_reply  # type: ignore[attr-defined]
    messages.append(entry)
    return AgentResult(
        answer=None, messages=messages, token_usage=usage, status="error", error=cause, steps=step
    )
