"""Agents work a task with a model: the transcript holds every step, tool errors are
observations, backend errors end the sample with status error."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from hydragent.agents import CodeAgent, DirectAgent, ToolCallingAgent
from hydragent.grammar import Grammar
from hydragent.models.scripted import ScriptedModel
from hydragent.tools import tool

CALCULATOR = {"calculator": {"_target_": "hydragent.tools.CalculatorTool"}}


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]


def test_direct_agent_uses_template_few_shot_and_answer_regex() -> None:
    model = ScriptedModel(responses=["Reasoning... Answer: 12"])
    agent = DirectAgent(
        system_prompt="Be brief.",
        prompt_template="Q: {input}",
        few_shot=[{"input": "1+1", "output": "Answer: 2"}],
        answer_regex=r"Answer:\s*(\S+)",
    )
    result = agent.run("3*4", model)
    assert result.answer == "12" and result.status == "ok"
    sent = model.calls[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[-1]["content"][0]["text"] == "Q: 3*4"


def test_tool_calling_agent_calls_a_tool_then_answers() -> None:
    model = ScriptedModel(
        responses=[
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": 42}}]},
        ]
    )
    result = ToolCallingAgent(tools=CALCULATOR).run("What is 6 times 7?", model)
    assert result.status == "ok" and result.answer == "42" and result.steps == 2
    assert roles(result.messages) == ["system", "user", "tool-call", "tool-response", "tool-call"]
    assert "42" in result.messages[3]["content"]
    assert result.messages[3]["tool_call_id"] == result.messages[2]["tool_calls"][0]["id"]
    assert result.token_usage.total_tokens > 0
    assert model.calls[0]["tools"] == ["calculator", "final_answer"]
    json.dumps(result.messages)  # the transcript is JSON-safe for samples.jsonl


def test_json_blob_fallback_and_errors_become_observations() -> None:
    model = ScriptedModel(
        responses=[
            "I think I should just guess.",
            '{"name": "calculator", "arguments": {"expression": "1/0"}}',
            '{"name": "calculator", "arguments": {"expr": "1"}}',
            '{"name": "final_answer", "arguments": {"answer": "done"}}',
        ]
    )
    result = ToolCallingAgent(tools=CALCULATOR).run("Divide one by zero.", model)
    assert result.status == "ok" and result.answer == "done"
    errors = [m["content"] for m in result.messages if m.get("error")]
    assert "could not read a tool call" in errors[0]
    assert "ZeroDivisionError" in errors[1]
    assert "unknown argument(s) expr" in errors[2]


def test_parallel_tool_calls_run_concurrently() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    @tool
    def slow_echo(text: str) -> str:
        """Echoes after a pause.

        Args:
            text: What to echo.
        """
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return text

    calls = [{"name": "slow_echo", "arguments": {"text": str(i)}} for i in range(3)]
    model = ScriptedModel(
        responses=[
            {"tool_calls": calls},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "ok"}}]},
        ]
    )
    result = ToolCallingAgent(tools=[slow_echo]).run("echo", model)
    assert result.answer == "ok" and peak[0] > 1
    assert [m["content"] for m in result.messages if m["role"] == "tool-response"] == [
        "Observation:\n0",
        "Observation:\n1",
        "Observation:\n2",
    ]


def test_backend_errors_end_the_sample_with_status_error() -> None:
    def broken(_: list[dict[str, Any]]) -> str:
        raise ConnectionError("server unreachable")

    result = ToolCallingAgent(tools=CALCULATOR).run("hi", ScriptedModel(responder=broken))
    assert result.status == "error" and "server unreachable" in (result.error or "")


def test_max_steps_then_the_agent_asks_for_a_final_answer() -> None:
    call = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}
    model = ScriptedModel(responses=[call, call, "It is 2."], exhausted="error")
    result = ToolCallingAgent(tools=CALCULATOR, max_steps=2).run("1+1?", model)
    assert result.answer == "It is 2." and result.steps == 3
    assert model.calls[-1]["tools"] == []


def test_code_agent_keeps_variables_and_ends_with_final_answer() -> None:
    model = ScriptedModel(
        responses=[
            "Thought: compute.\n<code>\nvalues = [3, 4, 5]\nprint(sum(values))\n",
            "```python\nfinal_answer(sum(values) * 2)\n```",
        ]
    )
    result = CodeAgent().run("Double the sum of 3, 4, 5.", model)
    assert result.status == "ok" and result.answer == "24" and result.steps == 2
    assert roles(result.messages) == ["system", "user", "assistant", "tool-response", "assistant"]
    assert "12" in result.messages[3]["content"]
    assert model.calls[0]["stop_sequences"] == ["</code>", "Observation:"]


def test_code_agent_reports_violations_and_calls_tools() -> None:
    model = ScriptedModel(
        responses=[
            "<code>open('/etc/passwd').read()</code>",
            "no code here",
            "<code>final_answer(calculator(expression='2**10'))</code>",
        ]
    )
    result = CodeAgent(tools=CALCULATOR).run("Power of two.", model)
    assert result.answer == "1024"
    observations = [m["content"] for m in result.messages if m["role"] == "tool-response"]
    assert "sandbox blocked" in observations[0]
    assert "no code found" in observations[1]


def test_code_agent_structured_mode_with_a_grammar() -> None:
    answer = json.dumps({"thought": "easy", "code": "final_answer('yes')"})
    model = ScriptedModel(responses=[answer])
    result = CodeAgent().run("Say yes.", model, grammar=Grammar(type="json_object"))
    assert result.answer == "yes"
    assert "JSON" in model.calls[0]["messages"][0]["content"][0]["text"]


def test_code_agent_structured_steps_are_constrained_to_thought_and_code() -> None:
    """The task's grammar describes the final answer; each step is held to {thought, code}."""
    answer_schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    code = "final_answer(json.dumps({'answer': '4'}))"
    step = json.dumps({"thought": "compute", "code": "import json\n" + code})
    model = ScriptedModel(responses=[step])
    result = CodeAgent().run(
        "2+2?", model, grammar=Grammar(type="json_schema", schema=answer_schema)
    )
    sent = model.calls[0]["grammar"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["required"] == ["thought", "code"]
    assert json.loads(result.answer) == {"answer": "4"}


def test_code_agent_runaway_code_is_an_observation() -> None:
    model = ScriptedModel(
        responses=["<code>while True:\n    pass</code>", "<code>final_answer('stopped')</code>"]
    )
    result = CodeAgent(timeout_s=1).run("Loop.", model)
    assert result.answer == "stopped"
    assert any("timed out" in (m.get("error") or "") for m in result.messages)


def test_roles_config_applies_to_agent_memory() -> None:
    model = ScriptedModel(
        responses=[
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": 4}}]},
        ],
        custom_role_conversions={"tool-call": "assistant", "tool-response": "user"},
    )
    ToolCallingAgent(tools=CALCULATOR).run("2+2?", model)
    assert [m["role"] for m in model.calls[1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]


def test_prompts_are_replaced_by_a_path_or_inline_text(tmp_path: Any) -> None:
    prompt_file = tmp_path / "prompt.md"
    prompt_file.write_text("Custom prompt. Tools:\n{tools}")
    answer = {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "x"}}]}
    for prompt, expected in ((str(prompt_file), "Custom prompt."), ("Inline {tools}", "Inline")):
        model = ScriptedModel(responses=[answer])
        ToolCallingAgent(tools=CALCULATOR, system_prompt=prompt).run("task", model)
        system = model.calls[0]["messages"][0]["content"][0]["text"]
        assert system.startswith(expected) and "calculator(expression: string)" in system


def test_agents_keep_no_per_sample_state_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    agent = CodeAgent()
    model = ScriptedModel(
        match={f"task {i}": f"<code>value = {i}\nfinal_answer(value * 10)</code>" for i in range(6)}
    )
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda i: agent.run(f"task {i}", model), range(6)))
    assert [r.answer for r in results] == [str(i * 10) for i in range(6)]


class SchemaRecorder(ScriptedModel):
    """A scripted model that also keeps the JSON schemas of the tools each step offered."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offered: list[dict[str, Any]] = []

    def generate(
        self,
        messages,
        stop_sequences=None,
        response_format=None,
        tools_to_call_from=None,
        grammar=None,
        **kwargs,
    ):
        self.offered.append(
            {t.name: t.json_schema()["function"]["parameters"] for t in tools_to_call_from or []}
        )
        return super().generate(
            messages, stop_sequences, response_format, tools_to_call_from, grammar, **kwargs
        )


def test_a_task_grammar_shapes_the_final_answer_not_the_tool_steps() -> None:
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    model = SchemaRecorder(
        responses=[
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": {"total": 42}}}]},
        ]
    )
    grammar = Grammar(type="json_schema", schema=schema)
    result = ToolCallingAgent(tools=CALCULATOR).run("6 times 7, as JSON", model, grammar=grammar)
    assert result.status == "ok" and json.loads(result.answer) == {"total": 42}
    assert [call["grammar"] for call in model.calls] == [None, None]  # steps stay free to call
    answer = model.offered[0]["final_answer"]["properties"]["answer"]
    assert {k: v for k, v in answer.items() if k != "description"} == schema


def test_a_final_answer_outside_the_choices_is_an_observation_and_the_run_goes_on() -> None:
    model = ScriptedModel(
        responses=[
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "maybe"}}]},
            {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "yes"}}]},
        ]
    )
    grammar = Grammar(type="choice", choices=["yes", "no"])
    result = ToolCallingAgent().run("Is 7 prime?", model, grammar=grammar)
    assert result.answer == "yes" and result.steps == 2
    assert "must be one of 'yes', 'no', got 'maybe'" in result.messages[3]["content"]


def test_the_forced_final_answer_after_max_steps_is_held_to_the_grammar() -> None:
    model = ScriptedModel(
        responses=[
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1 + 1"}}]},
            "no",
        ]
    )
    grammar = Grammar(type="choice", choices=["yes", "no"])
    result = ToolCallingAgent(tools=CALCULATOR, max_steps=1).run(
        "Is 2 odd?", model, grammar=grammar
    )
    assert result.answer == "no"
    assert model.calls[-1]["grammar"]["type"] == "choice" and model.calls[-1]["tools"] == []


def test_a_failed_call_keeps_the_prompt_in_the_transcript() -> None:
    """A sample whose model call fails still shows what was sent, then the error."""

    class Down(ScriptedModel):
        def request(self, req: Any) -> Any:
            raise ConnectionError("server down")

    agent = DirectAgent(system_prompt="Be brief.")
    result = agent.run("What is 2 + 2?", Down(responses=["4"]))
    assert result.status == "error" and "server down" in result.error
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant"]
    assert result.messages[1]["content"] == "What is 2 + 2?"
    assert "server down" in result.messages[-1]["error"]
