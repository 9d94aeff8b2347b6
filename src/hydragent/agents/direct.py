"""The direct agent: one generation per sample."""

from __future__ import annotations

from typing import Any

from hydragent.agents.base import Agent, AgentResult, record
from hydragent.grammar import Grammar
from hydragent.messages import content_to_text
from hydragent.models.base import Model


class DirectAgent(Agent):
    """Sends the task (optionally after a system prompt) and returns the reply as the answer."""

    def __init__(self, system_prompt: str | None = None, **generate_kwargs: Any) -> None:
        self.system_prompt = system_prompt
        self.generate_kwargs = generate_kwargs

    def run(
        self,
        task: str,
        model: Model,
        grammar: Grammar | None = None,
        sample: dict[str, Any] | None = None,
    ) -> AgentResult:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": task})
        reply = model.generate(messages, grammar=grammar, **self.generate_kwargs)
        return AgentResult(
            answer=content_to_text(reply.content),
            messages=[*messages, record(reply)],
            token_usage=reply.token_usage,
            steps=1,
            deployment=reply.metadata.get("deployment"),
        )
