"""Reasoning in a local model's text: `<think>...</think>` split from the answer, whole or
streamed. API backends get reasoning apart from the answer; local engines only have text."""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class ReasoningSplitter:
    """Splits streamed text into reasoning (`<think>…</think>`) and the answer after it.

    `feed` returns `(reasoning, content)` that are safe to emit: text that could still be the
    start of a tag, and whitespace at the edges of the reasoning, is held back. Reasoning is
    recognised when the text opens with `<think>`, or from the start when `thinking=True`
    (templates such as DeepSeek-R1's write `<think>` into the prompt, so the model's text
    begins inside the block). Only the first block is reasoning.
    """

    def __init__(
        self, thinking: bool = False, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE
    ) -> None:
        self.open_tag, self.close_tag = open_tag, close_tag
        self.saw_reasoning = thinking
        self._state = "thinking" if thinking else "start"
        self._pending = ""
        self._emitted = False  # some reasoning went out: its leading whitespace is gone
        self._strip_content = False  # drop the whitespace between </think> and the answer

    def feed(self, text: str) -> tuple[str, str]:
        self._pending += text
        reasoning = ""
        if self._state == "start":
            head = self._pending.lstrip()
            if head.startswith(self.open_tag):
                self._state, self.saw_reasoning = "thinking", True
                self._pending = head[len(self.open_tag) :]
            elif self.open_tag.startswith(head):  # only whitespace, or maybe a tag so far
                return "", ""
            else:
                self._state = "content"
        if self._state == "thinking":
            if not self._emitted:
                self._pending = self._pending.lstrip()
            cut = self._pending.find(self.close_tag)
            if cut == -1:
                # hold a possible tag start, and the whitespace before it (stripped if it ends)
                reasoning = self._pending[
                    : len(self._pending) - _overlap(self._pending, self.close_tag)
                ]
                reasoning = reasoning.rstrip()
                self._pending = self._pending[len(reasoning) :]
                self._emitted = self._emitted or bool(reasoning)
                return reasoning, ""
            reasoning = self._pending[:cut].rstrip()
            self._pending = self._pending[cut + len(self.close_tag) :]
            self._state, self._strip_content = "content", True
        if self._strip_content:
            self._pending = self._pending.lstrip()
            self._strip_content = not self._pending
        content, self._pending = self._pending, ""
        return reasoning, content

    def flush(self) -> tuple[str, str]:
        """What is left once the text has ended (an unclosed block counts as reasoning)."""
        pending, self._pending = self._pending, ""
        if self._state == "thinking":
            return pending.strip() if not self._emitted else pending.rstrip(), ""
        return "", pending


def split_reasoning(
    text: str, thinking: bool = False, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE
) -> tuple[str | None, str]:
    """`(reasoning, answer)` of a local model's whole reply; reasoning is None when there is
    none. A reply with a `</think>` but no opening tag is taken as begun inside the block
    (the template wrote `<think>`), as is any reply when `thinking=True`."""
    opens = text.lstrip().startswith(open_tag)
    thinking = thinking or (not opens and close_tag in text)
    splitter = ReasoningSplitter(thinking, open_tag, close_tag)
    reasoning, content = splitter.feed(text)
    tail_reasoning, tail_content = splitter.flush()
    if not splitter.saw_reasoning:
        return None, text
    return reasoning + tail_reasoning, content + tail_content


def _overlap(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
