"""Shared agent plumbing: prompts from package files or config, and the transcript.

An agent's memory is a list of message dicts with the five roles (system, user, assistant,
tool-call, tool-response). The same list is sent to the model (so `roles=`/`messages=` apply as
to single calls: prepare_messages ignores the extra keys) and stored as the transcript, where
entries also carry `step`, `token_usage`, `observation` and `error`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from hydragent.messages import ChatMessage, content_to_text

#: endings of prompt files: a value that ends so, on one line without spaces, names a file
PROMPT_FILE_SUFFIXES = (".md", ".txt", ".j2", ".jinja", ".jinja2", ".prompt")


def load_prompt(value: str | None, default_file: str) -> str:
    """`value` may be a path to a file or inline text; None means the packaged default. Text
    is text: only a value shaped like a path (one line, no spaces, ending in a prompt suffix
    or starting with /, ./, ../ or ~/) names a file. Such a value that names no file is an
    error, not a prompt: sent as text, it would quietly change every sample. A long one-line
    prompt is never asked of the file system ("File name too long")."""
    if value is None:
        return resources.files("hydragent.agents.prompts").joinpath(default_file).read_text()
    looks_like_a_path = not any(c.isspace() for c in value) and (
        value.lower().endswith(PROMPT_FILE_SUFFIXES) or value.startswith(("/", "./", "../", "~/"))
    )
    if not looks_like_a_path:
        return value
    candidate = Path(value).expanduser()
    try:
        if candidate.is_file():
            return candidate.read_text()
    except OSError as error:  # a name too long for the file system names no file
        raise FileNotFoundError(
            f"no such prompt file: {value[:80]}... ({error.strerror})"
        ) from None
    raise FileNotFoundError(
        f"no such prompt file: {value} (from {Path.cwd()}); give an existing file, or inline text"
    )


def fill(template: str, **values: str) -> str:
    """Replace `{name}` placeholders only, so JSON braces in prompts stay as they are."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def reply_entry(reply: ChatMessage, step: int, role: str = "assistant") -> dict[str, Any]:
    entry = reply.dict()
    entry.update(role=role, step=step, content=content_to_text(reply.content) or None)
    if not entry.get("tool_calls"):
        entry.pop("tool_calls", None)
    return entry
