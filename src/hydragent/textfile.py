"""Reading the text files a user hands hydragent (tasks, scripted responses): every failure
names the file and the line, says what the file looks like, and what to do.

- Text is UTF-8; a leading byte-order mark (spreadsheets and Windows editors write one) is
  dropped. Bytes that are not UTF-8 name `file:line` and the byte, with the fix.
- JSON Lines holds one JSON value per line. A JSON array (or any JSON document spread over
  several lines) saved as .jsonl is named as such, with the two ways on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BOM = "\ufeff"


class TextFileError(ValueError):
    """A file that cannot be read as the text it should be; the message starts with where."""


def _undecodable(label: str, number: int, raw: bytes, error: UnicodeDecodeError) -> TextFileError:
    byte = raw[error.start : error.start + 1].hex()
    return TextFileError(
        f"{label}:{number}: not UTF-8 text (byte 0x{byte} at column {error.start + 1}); save "
        "the file as UTF-8 (for example: iconv -f latin1 -t utf-8 FILE > NEW)"
    )


def iter_lines(path: Path, label: str | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, streamed, decoded strictly as UTF-8."""
    label = label or str(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _undecodable(label, number, raw, error) from None
            yield number, text.lstrip(BOM) if number == 1 else text


def read_text(path: Path, label: str | None = None) -> str:
    """The whole file as text (see `iter_lines`)."""
    return "".join(text for _, text in iter_lines(path, label))


def first_char(path: Path) -> str:
    """The first character that is not blank nor a byte-order mark (`[`: a JSON array)."""
    for _, text in iter_lines(path):
        stripped = text.lstrip()
        if stripped:
            return stripped[0]
    return ""


def _whole_document(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except ValueError:
        return None


def json_lines(
    path: Path, label: str | None = None, one: str = "object"
) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON Lines file. `one` names what a
    line holds, for the messages ("object", "response")."""
    label = label or str(path)
    for number, text in iter_lines(path, label):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as error:
            document = _whole_document(path)
            if isinstance(document, list):
                raise TextFileError(
                    f"{label}: this file is one JSON array, not JSON Lines (one {one} per "
                    "line); name it .json (or set task.format=json), or write one "
                    f"{one} per line"
                ) from None
            if document is not None:
                raise TextFileError(
                    f"{label}: this file is one JSON {type(document).__name__} spread over "
                    f"several lines, not JSON Lines; write one {one} per line"
                ) from None
            raise TextFileError(
                f"{label}:{number}: not valid JSON ({error.msg}, column {error.colno}); "
                f"JSON Lines holds one {one} per line"
            ) from None


def json_document(path: Path, label: str | None = None) -> Any:
    """A whole JSON file (a JSON array of rows or of responses)."""
    label = label or str(path)
    text = read_text(path, label)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        hint = ""
        if error.msg == "Extra data":
            hint = "; one value per line is JSON Lines: name it .jsonl or set task.format=jsonl"
        raise TextFileError(
            f"{label}:{error.lineno}: not valid JSON ({error.msg}, column {error.colno}){hint}"
        ) from None
