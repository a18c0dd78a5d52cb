"""Pydantic's validation errors in a technician's words, placed at their line in the file.

Every file the gateway and the rig read (the building config, a device profile, a model
manifest, a scenario, a rig file) reports `FILE:LINE:COL: path: message`, all problems at
once. The mapping is written here once so that the files agree on what a path looks like,
which union tags are dropped and how a value YAML read as a boolean is explained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import ValidationError

from edge.config.yaml_source import Document

Loc = tuple[Any, ...]


class Located(NamedTuple):
    """One problem without its file: `Problem(file, *located)` makes a config, manifest or scenario problem."""

    line: int
    column: int
    path: str
    message: str


def dotted(loc: Loc, root: str = "(root)") -> str:
    """`doors.0.name`; `root` when the problem is the whole document (or request)."""
    return ".".join(map(str, loc)) or root


def message(error: Any, document: Document | None = None, loc: Loc | None = None) -> str:
    """A pydantic error's message without pydantic's "Value error, " prefix.

    Given the document (and the error's path in it), a value YAML 1.1 read as a boolean
    (`off` in `enum: {0: off}`, `name: on`) is named as the trap it is, with the fix, instead
    of "Input should be a valid string"."""
    text = str(error["msg"]).removeprefix("Value error, ")
    if document is not None and isinstance(error.get("input"), bool):
        word = document.boolean_word(tuple(error["loc"]) if loc is None else loc)
        if word is not None:
            return (f"{word} is read as the boolean {str(error['input']).lower()}, not as the word: YAML 1.1 reads "
                    f"on/off/yes/no unquoted as booleans; quote it ('{word}') to mean the word ({text})")
    return text


def at(document: Document, loc: Loc, text: str) -> Located:
    """A problem at `loc` (or its nearest ancestor written in the file)."""
    line, column = document.position(loc)
    return Located(line, column, dotted(loc), text)


def located(invalid: ValidationError, document: Document, *, loc: Callable[[Loc], Loc] = tuple,
            booleans: bool = False) -> list[Located]:
    """Every error of `invalid`, placed in `document`.

    `loc` turns pydantic's location into the path in the file (dropping union tags and wrapper
    keys that are not written there); `booleans` explains a value YAML read as a boolean."""
    found = []
    for error in invalid.errors():
        path = loc(tuple(error["loc"]))
        found.append(at(document, path, message(error, document if booleans else None, path)))
    return found


def without(tags: set[str] | frozenset[str]) -> Callable[[Loc], Loc]:
    """A `loc` for `located` that drops pydantic's union-branch tags (`tcp`, `rtu`), which are not keys in the file."""
    return lambda loc: tuple(part for part in loc if not (isinstance(part, str) and part in tags))
