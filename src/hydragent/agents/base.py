"""The agent contract the runner relies on: `run(task, model) -> AgentResult`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from hydragent.grammar import Grammar
from hydragent.messages import ChatMessage, TokenUsage
from hydragent.models.base import Model


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
