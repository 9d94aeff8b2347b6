"""The direct agent: one generation per sample."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hydragent.agents.base import Agent, AgentResult, failed, record
from hydragent.agents.memory import load_prompt
from hydragent.agents.steps import Generate, Steps
from hydragent.grammar import Grammar
from hydragent.messages import TokenUsage, content_to_text
from hydragent.models.base import Model


class DirectAgent(Agent):
    """Sends the task (after an optional system prompt and few-shot turns) and returns the reply.

    `prompt_template` (a path or inline text) formats the user turn from the sample's fields,
    e.g. "Question: {input}"; `few_shot` is a list of `{input, output}` pairs sent as earlier
    turns; `answer_regex` extracts the answer (its first group, or the whole match).
    """

    def __init__(
        self,
        system_prompt: str | None = None,
        prompt_template: str | None = None,
        few_shot: list[Mapping[str, Any]] | None = None,
        answer_regex: str | None = None,
        **generate_kwargs: Any,
    ) -> None:
        self.system_prompt = load_prompt(system_prompt, "") if system_prompt else None
        self.prompt_template = load_prompt(prompt_template, "") if prompt_template else None
        self.few_shot = [dict(example) for example in few_shot or []]
        self.answer_pattern = re.compile(answer_regex, re.S) if answer_regex else None
        self.generate_kwargs = generate_kwargs

    def render(self, fields: Mapping[str, Any]) -> str:
        if self.prompt_template is None:
            return str(fields["input"])
        try:
            return self.prompt_template.format_map(dict(fields))
        except KeyError as error:
            raise ValueError(
                f"agent.prompt_template uses {{{error.args[0]}}}, which the sample lacks; "
                f"sample fields: {', '.join(fields)}"
            ) from None

    def steps(
        self,
        task: str,
        model: Model,
        grammar: Grammar | None = None,
        sample: dict[str, Any] | None = None,
    ) -> Steps[AgentResult]:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for example in self.few_shot:
            messages.append({"role": "user", "content": self.render(example)})
            messages.append({"role": "assistant", "content": str(example["output"])})
        messages.append({"role": "user", "content": self.render({**(sample or {}), "input": task})})
        try:
            reply = yield Generate(messages, {"grammar": grammar, **self.generate_kwargs})
        except Exception as error:  # the sample fails, its prompt stays in the transcript
            return failed(messages, TokenUsage(), 1, error)
        text = content_to_text(reply.content)
        return AgentResult(
            answer=self.extract(text),
            messages=[*messages, record(reply)],
            token_usage=reply.token_usage,
            steps=1,
            deployment=reply.metadata.get("deployment"),
        )

    def extract(self, text: str) -> str:
        if self.answer_pattern is None:
            return text
        match = self.answer_pattern.search(text)
        if match is None:
            return text
        return next((g for g in match.groups() if g is not None), match.group(0)).strip()
