"""The code agent: the model writes Python, the sandbox runs it, until `final_answer(...)`."""

from __future__ import annotations

import json
import re
from typing import Any

from hydragent.agents.base import Agent, AgentResult, failed
from hydragent.agents.memory import fill, load_prompt, reply_entry
from hydragent.agents.tool_calling import _as_text, describe_tools
from hydragent.grammar import Grammar
from hydragent.messages import TokenUsage, content_to_text
from hydragent.models.base import Model
from hydragent.models.text import parse_json_blob
from hydragent.sandbox import PythonSession, SandboxSpec, as_spec
from hydragent.tools import Tool, build_tools

CODE_BLOCK = re.compile(r"<code>(.*?)(?:</code>|$)|```(?:python|py)?\s*\n(.*?)(?:```|$)", re.S)
STOP_SEQUENCES = ["</code>", "Observation:"]
STEP_SCHEMA = {
    "type": "object",
    "properties": {"thought": {"type": "string"}, "code": {"type": "string"}},
    "required": ["thought", "code"],
    "additionalProperties": False,
}


def step_grammar(model: Model) -> Grammar:
    """Structured mode constrains every step to {thought, code}, whatever the task's grammar:
    the task's grammar describes the final answer, not the steps that lead to it."""
    if "json_schema" in getattr(model, "supported_grammars", ()):
        return Grammar(type="json_schema", name="code_step", schema=STEP_SCHEMA)
    return Grammar(type="json_object")


class CodeAgent(Agent):
    """Each step the model writes code (in <code>…</code> or ```python blocks, or as JSON
    {thought, code} when a grammar is configured); it runs in one sandbox session per sample, so
    variables persist. Tools other than `python` and `final_answer` are callable from the code
    and run in this process."""

    def __init__(
        self,
        tools: Any = None,
        max_steps: int = 6,
        system_prompt: str | None = None,
        structured_prompt: str | None = None,
        final_answer_prompt: str | None = None,
        authorized_imports: list[str] | None = None,
        timeout_s: float = 10,
        memory_mb: int = 512,
        max_observation_chars: int = 4000,
        sandbox: SandboxSpec | dict[str, Any] | None = None,
        **generate_kwargs: Any,
    ) -> None:
        """`sandbox` is where the code runs (None: `sandbox=auto`, resolved at the first run)."""
        if max_steps < 1:
            raise ValueError(f"agent.max_steps must be at least 1, got {max_steps}")
        self.tools: dict[str, Tool] = {
            t.name: t for t in build_tools(tools) if t.name not in ("python", "final_answer")
        }
        imports = ", ".join(authorized_imports) if authorized_imports is not None else "any"
        listing = describe_tools(self.tools) + "\n- final_answer(answer: any): ends the task"
        self.prompts = {
            structured: fill(
                load_prompt(prompt, default), tools=listing.strip(), authorized_imports=imports
            )
            for structured, prompt, default in (
                (False, system_prompt, "code.md"),
                (True, structured_prompt, "code_structured.md"),
            )
        }
        self.final_answer_prompt = load_prompt(final_answer_prompt, "final_answer.md")
        self.max_steps = max_steps
        self.sandbox = sandbox
        self.session_options = {
            "authorized_imports": authorized_imports,
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
            "max_output_chars": max_observation_chars,
        }
        self.max_observation_chars = max_observation_chars
        self.generate_kwargs = generate_kwargs

    def run(
        self,
        task: str,
        model: Model,
        grammar: Grammar | None = None,
        sample: dict[str, Any] | None = None,
    ) -> AgentResult:
        structured = grammar is not None and grammar.active
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.prompts[structured]},
            {"role": "user", "content": task},
        ]
        usage = TokenUsage()
        call_options: dict[str, Any] = (
            {"grammar": step_grammar(model)} if structured else {"stop_sequences": STOP_SEQUENCES}
        )
        tools = {name: tool.__call__ for name, tool in self.tools.items()}
        if not isinstance(self.sandbox, SandboxSpec):
            self.sandbox = as_spec(self.sandbox)
        with PythonSession(tools=tools, sandbox=self.sandbox, **self.session_options) as session:
            for step in range(1, self.max_steps + 1):
                try:
                    reply = model.generate(messages, **call_options, **self.generate_kwargs)
                except Exception as error:  # a backend failure ends the sample
                    return failed(messages, usage, step, error)
                usage = usage + reply.token_usage
                text = content_to_text(reply.content)
                entry = reply_entry(reply, step)
                if not structured and "<code>" in text and "</code>" not in text:
                    entry["content"] = text + "</code>"  # the stop sequence ate it
                messages.append(entry)
                try:
                    code = extract_code(text, structured)
                except ValueError as error:
                    messages.append(_observation(f"Error: {error}", step, str(error)))
                    continue
                result = session.run(code)
                entry["code"] = code
                if result.is_final_answer:
                    return AgentResult(
                        answer=_as_text(result.final_answer),
                        messages=messages,
                        token_usage=usage,
                        steps=step,
                        deployment=reply.metadata.get("deployment"),
                    )
                observation = result.observation()[: self.max_observation_chars]
                messages.append(_observation("Observation:\n" + observation, step, result.error))
        step = self.max_steps + 1
        messages.append({"role": "user", "content": self.final_answer_prompt, "step": step})
        try:
            reply = model.generate(messages, **self.generate_kwargs)
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


def extract_code(text: str, structured: bool) -> str:
    """The code of one step: the `code` field in structured mode, else the code blocks."""
    if structured:
        try:
            blob = json.loads(text)
        except json.JSONDecodeError:
            blob, _ = parse_json_blob(text)
        if not isinstance(blob, dict) or not isinstance(blob.get("code"), str):
            raise ValueError('answer with a JSON object {"thought": "...", "code": "..."}')
        return blob["code"]
    blocks = [(a or b).strip() for a, b in CODE_BLOCK.findall(text)]
    blocks = [block for block in blocks if block]
    if not blocks:
        raise ValueError(
            "no code found: write Python between <code> and </code>, "
            "and call final_answer(...) in code when you know the answer"
        )
    return "\n\n".join(blocks)


def _observation(content: str, step: int, error: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": "tool-response", "content": content, "step": step}
    if error:
        entry["error"] = error
    return entry
