"""The tool-calling agent: native tool calls (or a JSON blob), run until `final_answer`."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hydragent.agents.base import Agent, AgentResult, failed
from hydragent.agents.memory import fill, load_prompt, reply_entry
from hydragent.agents.steps import Blocking, Generate, Steps
from hydragent.grammar import Grammar
from hydragent.messages import ChatMessageToolCall, TokenUsage, content_to_text
from hydragent.models.base import Model
from hydragent.tools import FinalAnswerTool, Tool, build_tools


class ToolCallingAgent(Agent):
    """Each step asks the model for tool calls, runs them (in parallel when there are several)
    and sends the results back. Tool and parse errors become observations; a model error ends
    the sample with status `error`. After `max_steps`, the model is asked for a final answer."""

    def __init__(
        self,
        tools: Any = None,
        max_steps: int = 6,
        system_prompt: str | None = None,
        final_answer_prompt: str | None = None,
        max_observation_chars: int = 10000,
        max_parallel_tools: int = 4,
        **generate_kwargs: Any,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"agent.max_steps must be at least 1, got {max_steps}")
        built = [t for t in build_tools(tools) if t.name != "final_answer"]
        self.tools: dict[str, Tool] = {t.name: t for t in [*built, FinalAnswerTool()]}
        self.max_steps = max_steps
        self.system_prompt = fill(
            load_prompt(system_prompt, "tool_calling.md"), tools=describe_tools(self.tools)
        )
        self.final_answer_prompt = load_prompt(final_answer_prompt, "final_answer.md")
        self.max_observation_chars = max_observation_chars
        self.max_parallel_tools = max_parallel_tools
        self.generate_kwargs = generate_kwargs

    def steps(
        self,
        task: str,
        model: Model,
        grammar: Grammar | None = None,
        sample: dict[str, Any] | None = None,
    ) -> Steps[AgentResult]:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": task},
        ]
        usage = TokenUsage()
        offered = self._tools_for(grammar)
        tools = list(offered.values())
        for step in range(1, self.max_steps + 1):
            try:
                reply = yield Generate(
                    messages, {"tools_to_call_from": tools, **self.generate_kwargs}
                )
            except Exception as error:  # a backend failure ends the sample, with its cause
                return failed(messages, usage, step, error)
            usage = usage + reply.token_usage
            try:
                reply = model.parse_tool_calls(reply)
            except ValueError as error:
                messages.append(reply_entry(reply, step))
                messages.append(
                    {
                        "role": "tool-response",
                        "content": f"Error: could not read a tool call from your answer: {error}."
                        " Call a tool, or final_answer when you are done.",
                        "step": step,
                        "error": str(error),
                    }
                )
                continue
            calls = reply.tool_calls or []
            entry = reply_entry(reply, step, role="tool-call")
            text = content_to_text(reply.content)
            listing = json.dumps([c.dict() for c in calls], default=str)
            entry["content"] = (text + "\n" if text else "") + "Calling tools:\n" + listing
            messages.append(entry)
            outcomes = yield Blocking(self._run_calls, (calls, offered))
            for call, (value, error) in zip(calls, outcomes, strict=True):
                if call.function.name == "final_answer" and error is None:
                    return AgentResult(
                        answer=_as_text(value),
                        messages=messages,
                        token_usage=usage,
                        steps=step,
                        deployment=reply.metadata.get("deployment"),
                    )
                observation = f"Error: {error}" if error else _as_text(value)
                messages.append(
                    {
                        "role": "tool-response",
                        "tool_call_id": call.id,
                        "name": call.function.name,
                        "content": "Observation:\n" + observation[: self.max_observation_chars],
                        "step": step,
                        **({"error": error} if error else {}),
                    }
                )
        return (yield from self._final_answer(messages, usage, grammar))

    def _tools_for(self, grammar: Grammar | None) -> dict[str, Tool]:
        """The tools offered at each step. The task's grammar describes the final answer, not
        the steps, so it shapes final_answer's argument instead of every reply: on a local
        backend, decoding each reply to the answer's grammar would rule out the tool calls."""
        if grammar is None:
            return self.tools
        return {**self.tools, "final_answer": FinalAnswerTool(grammar.value_schema())}

    def _run_calls(
        self, calls: list[ChatMessageToolCall], tools: dict[str, Tool]
    ) -> list[tuple[Any, str | None]]:
        if len(calls) <= 1:
            return [_run_call(call, tools) for call in calls]
        with ThreadPoolExecutor(max_workers=min(self.max_parallel_tools, len(calls))) as pool:
            return list(pool.map(lambda call: _run_call(call, tools), calls))

    def _final_answer(
        self,
        messages: list[dict[str, Any]],
        usage: TokenUsage,
        grammar: Grammar | None,
    ) -> Steps[AgentResult]:
        step = self.max_steps + 1
        messages.append({"role": "user", "content": self.final_answer_prompt, "step": step})
        try:
            reply = yield Generate(messages, {"grammar": grammar, **self.generate_kwargs})
        except Exception as error:
            return failed(messages, usage, step, error)
        messages.append(reply_entry(reply, step))
        return AgentResult(
            answer=content_to_text(reply.content),
            messages=messages,
            token_usage=usage + reply.token_usage,
            steps=step,
            deployment=reply.metadata.get("deployment"),
        )


def _run_call(call: ChatMessageToolCall, tools: dict[str, Tool]) -> tuple[Any, str | None]:
    tool = tools.get(call.function.name)
    if tool is None:
        return None, f"unknown tool {call.function.name!r}; available tools: {', '.join(tools)}"
    try:
        return tool.call(call.function.arguments), None
    except Exception as error:  # tool failures are observations the model can act on
        return None, f"{type(error).__name__}: {error}"


def describe_tools(tools: dict[str, Tool]) -> str:
    lines = []
    for tool in tools.values():
        arguments = ", ".join(
            f"{name}: {spec.get('type', 'any')}" for name, spec in tool.inputs.items()
        )
        lines.append(f"- {tool.name}({arguments}) -> {tool.output_type}: {tool.description}")
    return "\n".join(lines)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
