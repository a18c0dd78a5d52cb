"""YAML that remembers where each value came from, and refuses what no building needs.

A technician fixing a config at 2 a.m. needs `building.yaml:42:7`, not "somewhere in
doors". PyYAML's composer keeps a start mark on every node; this walks the node tree
once, builds plain Python data with the safe constructor, and records the line and
column of every mapping key and value by its path.

A config is small. A file that is not (too big, nested thousands deep, or an alias bomb
that expands a few lines into billions of values) is refused with the position of the
problem before it costs memory or a stack: the limits are checked while composing and on
the node graph, where a repeated alias is measured once, never by expanding it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml

Path = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024
"""A six-storey building's config is 15 KB; a large estate is still far below this."""
MAX_DEPTH = 50
"""Levels of nesting, counting what aliases repeat; a building config is about 6 deep."""
MAX_VALUES = 100_000
"""Keys and values in the document, counting every repetition an alias makes."""

_MERGE = "tag:yaml.org,2002:merge"


class SourceError(ValueError):
    """The file cannot be read as a YAML document; carries the 1-based position of the problem."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Document:
    """Parsed data plus the (line, column) of every path in it, both 1-based."""

    data: Any
    positions: dict[Path, tuple[int, int]]
    booleans: dict[Path, str] = field(default_factory=dict)  # plain words YAML 1.1 read as true/false: on, off, yes, no

    def boolean_word(self, path: Path) -> str | None:
        """The word written where a boolean was read (`on` for true), so an error can name the trap."""
        for end in range(len(path), 0, -1):
            word = self.booleans.get(tuple(path[:end]))
            if word is not None:
                return word
        return None

    def position(self, path: Path) -> tuple[int, int]:
        """The position of `path`, or of its nearest ancestor that exists in the file."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found:
                return found
        return (1, 1)


def read(path: FilePath | str, max_bytes: int = MAX_BYTES) -> str:
    """The text of a regular UTF-8 file of at most `max_bytes`; anything else is a SourceError.

    Opened non-blocking so a FIFO or a device named by mistake cannot hang the check.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise SourceError(1, 1, f"cannot open: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SourceError(1, 1, "is a directory, not a YAML file")
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(1, 1, "is not a regular file")
        if info.st_size > max_bytes:
            raise SourceError(1, 1, f"is {info.st_size} bytes; at most {max_bytes} are read")
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as error:
        raise SourceError(1, 1, f"cannot read: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise SourceError(1, 1, f"is more than {max_bytes} bytes; at most {max_bytes} are read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _position(data, error.start, b"\n")
        raise SourceError(line, column, f"is not UTF-8 text: byte 0x{data[error.start]:02x} at byte column {column}") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def load_file(path: FilePath | str) -> Document:
    """`read` then `load`."""
    return load(read(path))


def load(text: str) -> Document:
    """Parse one YAML document; an empty document gives `None` data."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as error:
        # PyYAML refuses NUL and other control characters up front, by character index.
        line, column = _position(text, error.position, "\n")
        raise SourceError(line, column, f"control character U+{error.character:04X} is not allowed in YAML") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(None, {})
        _measure(node)
        positions: dict[Path, tuple[int, int]] = {}
        data = _build(loader, node, (), positions)
        booleans = _booleans(node, ())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SourceError(line, column, f"{error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise SourceError(1, 1, str(error)) from None
    finally:
        loader.dispose()
    return Document(data, positions, booleans)


_BOOL = "tag:yaml.org,2002:bool"


def _booleans(node: yaml.Node, path: Path) -> dict[Path, str]:
    """Plain scalars other than true/false that YAML 1.1 reads as booleans (on, off, yes, no), by path."""
    found: dict[Path, str] = {}
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _BOOL and node.style is None and node.value.lower() not in ("true", "false"):
            found[path] = node.value
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found |= _booleans(item, path + (index,))
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                try:
                    key = yaml.SafeLoader("").construct_object(key_node) if key_node.tag != _BOOL else key_node.value
                except Exception:  # noqa: BLE001 - positions only; the build reports what cannot be read
                    continue
                found |= _booleans(value_node, path + (key,))
    return found


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing deep nesting while it composes: its composer recurses per level."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _measure(root: yaml.Node) -> None:
    """Refuse a document that expands beyond MAX_VALUES values or MAX_DEPTH levels.

    Aliases make the node tree a graph: `&a [*b, *b, ...]` nested nine times is a few lines
    that expand to a billion values, and `&a [*a]` never ends. Each node is measured once and
    its (values, height) reused wherever an alias repeats it, so this costs the size of the
    file, not of the expansion; the error points at the node where the limit is crossed.
    """
    measured: dict[int, tuple[int, int]] = {}

    def walk(node: yaml.Node, depth: int) -> tuple[int, int]:
        known = measured.get(id(node))
        if known is None:
            if depth > MAX_DEPTH:
                raise _refused(node, f"nested more than {MAX_DEPTH} levels deep, counting what aliases repeat")
            if isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = node.value
            else:
                children = []
            values, height = 1, 0
            for child in children:
                child_values, child_height = walk(child, depth + 1)
                values += child_values
                height = max(height, child_height + 1)
                if values > MAX_VALUES:
                    raise _refused(node, f"expands to more than {MAX_VALUES} values, counting what aliases repeat")
            known = measured[id(node)] = (values, height)
        if depth + known[1] > MAX_DEPTH:
            raise _refused(node, f"nested more than {MAX_DEPTH} levels deep, counting what aliases repeat")
        return known

    walk(root, 0)


def _refused(node: yaml.Node, problem: str) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, problem, node.start_mark)


def _position(text: str | bytes, index: int, newline: str | bytes) -> tuple[int, int]:
    """1-based (line, column) of `index` in `text`."""
    line = text.count(newline, 0, index) + 1  # type: ignore[arg-type]
    return line, index - (text.rfind(newline, 0, index) + 1) + 1  # type: ignore[arg-type]


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, positions: dict[Path, tuple[int, int]]) -> Any:
    positions.setdefault(path, _mark(node))
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(loader, node, path, positions)
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (index,), positions) for index, item in enumerate(node.value)]
    return _construct(loader, node)


def _build_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, path: Path, positions: dict[Path, tuple[int, int]]) -> dict:
    """A mapping; `<<: *anchor` (or a list of them) merges keys the mapping does not set itself,
    the first listed winning, as YAML says. A key written twice is an error."""
    result: dict[Any, Any] = {}
    merged: dict[Any, Any] = {}
    merged_positions: dict[Path, tuple[int, int]] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in reversed(sources):
                if not isinstance(source, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(None, None, "'<<' merges a mapping or a list of mappings", source.start_mark)
                merged.update(_build_mapping(loader, source, path, merged_positions))
            continue
        key = _construct(loader, key_node)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark) from None
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        positions[path + (key,)] = _mark(key_node)
        result[key] = _build(loader, value_node, path + (key,), positions)
    if not merged:
        return result
    for merged_path, position in merged_positions.items():  # where a merged value is written
        positions.setdefault(merged_path, position)
    return {**merged, **result}


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """A scalar (or a key) as Python data; a value PyYAML cannot convert is an error at its mark."""
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, OverflowError) as error:
        raise yaml.constructor.ConstructorError(None, None, f"cannot read this value: {error}", node.start_mark) from None
