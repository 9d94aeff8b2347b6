"""Declared chat templates for tokenizers that ship none (the bundled Gemma GGUF is one).

`chat_template=` on a local backend names one of these, or is a Jinja string. Each template
lists the available tools in a system preamble, because these formats have no native slot.

`few_shot` is not a chat format but the prompt form a *base* model completes: three solved
questions, then the conversation as "Q: ... / A: ..." lines, ending with "A:". A base model
(the bundled Gemma 3 270M is one: no instruction tuning, no template of its own) continues
such a page with a short answer and then the next "Q:", so the answer ends at its line's end.
Under a chat format the same model repeats the question or invents a conversation.
"""

from __future__ import annotations

# Literal text sits inside {{ '...' }} so that the whitespace options transformers sets on
# its Jinja environment (trim_blocks, lstrip_blocks) cannot eat a newline.
_TOOLS_TEXT = (
    "{% set tools_text %}{% if tools %}"
    "{{ 'You can call these tools. To call one, answer with a JSON object "
    '{"name": <tool name>, "arguments": <arguments>}.\n\' }}'
    "{% for tool in tools %}{{ tool | tojson }}{{ '\n' }}{% endfor %}"
    "{% endif %}{% endset %}"
)

PLAIN = (
    _TOOLS_TEXT + "{% if tools_text %}{{ tools_text + '\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ (message['role'] | capitalize) + ': ' + message['content'] + '\n\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# Gemma has no system role: system text and tools open the first user turn instead.
GEMMA = (
    _TOOLS_TEXT + "{% set ns = namespace(preamble=tools_text) %}"
    "{% for message in messages if message['role'] == 'system' %}"
    "{% set ns.preamble = ns.preamble + message['content'] + '\n\n' %}{% endfor %}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\n' }}{% if loop.first %}{{ ns.preamble }}{% endif %}"
    "{{ (message['content'] | trim) + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

#: the solved questions `few_shot` opens with; none shares a topic with the built-in tasks.
FEW_SHOT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the capital of Spain?", "Madrid"),
    ("What color is snow?", "White"),
    ("How many wheels does a bicycle have?", "2"),
)

_SHOTS = "".join(f"Q: {question}\nA: {answer}\n\n" for question, answer in FEW_SHOT_EXAMPLES)

# System text and tools first (as instructions above the page), then the solved examples,
# then each user turn as a question and each assistant turn as its answer.
FEW_SHOT = (
    _TOOLS_TEXT + "{% for message in messages if message['role'] == 'system' %}"
    "{{ (message['content'] | trim) + '\n\n' }}{% endfor %}"
    "{% if tools_text %}{{ tools_text + '\n' }}{% endif %}"
    "{{ " + repr(_SHOTS) + " }}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% if message['role'] == 'assistant' %}{{ 'A: ' + (message['content'] | trim) + '\n\n' }}"
    "{% else %}{{ 'Q: ' + (message['content'] | trim) + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'A:' }}{% endif %}"
)

CHATML = (
    _TOOLS_TEXT + "{% if tools_text %}"
    "{{ '<|im_start|>system\n' + (tools_text | trim) + '<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TEMPLATES: dict[str, str] = {
    "plain": PLAIN,
    "gemma": GEMMA,
    "chatml": CHATML,
    "few_shot": FEW_SHOT,
}

#: end-of-turn markers each template emits; generation also stops on them when they are tokens.
END_MARKERS: dict[str, tuple[str, ...]] = {
    "plain": (),
    "gemma": ("<end_of_turn>",),
    "chatml": ("<|im_end|>",),
    "few_shot": (),
}


#: text that opens the next turn; a model (a base model above all) that writes it is done.
TURN_STOPS: dict[str, tuple[str, ...]] = {
    "plain": ("\nUser:", "\nSystem:"),
    "gemma": (),
    "chatml": (),
    # one answer is one line: a base model writes its answer, then the next question
    "few_shot": ("\n",),
}

#: templates whose generation prompt ends with a label ("Assistant:", "A:"): the answer's
#: opening space is dropped.
OPENS_WITH_SPACE = frozenset({"plain", "few_shot"})


def template_name(template: str | None) -> str | None:
    """Which declared template `template` is, if any."""
    return next((name for name, text in TEMPLATES.items() if text == template), None)


def resolve_template(choice: str | None) -> str | None:
    """A template name or a Jinja string -> Jinja text; None stays None (use the tokenizer's)."""
    if choice is None:
        return None
    if choice in TEMPLATES:
        return TEMPLATES[choice]
    if "{{" in choice or "{%" in choice:
        return choice
    raise ValueError(
        f"unknown chat_template {choice!r}; valid: {', '.join(TEMPLATES)}, or a Jinja template"
    )
