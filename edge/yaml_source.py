"""YAML that remembers where each value came from.

A technician fixing a config at 2 a.m. needs `building.yaml:42:7`, not "somewhere in
doors". PyYAML's composer keeps a start mark on every node; this walks the node tree
once, builds plain Python data with the safe constructor, and records the line and
column of every mapping key and value by its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

Path = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    """The text is not YAML; carries the position PyYAML found the problem at."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Document:
    """Parsed data plus the (line, column) of every path in it, both 1-based."""

    data: Any
    positions: dict[Path, tuple[int, int]]

    def position(self, path: Path) -> tuple[int, int]:
        """The position of `path`, or of its nearest ancestor that exists in the file."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found:
                return found
        return (1, 1)


def load(text: str) -> Document:
    """Parse one YAML document; an empty document gives `None` data."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(None, {})
        positions: dict[Path, tuple[int, int]] = {}
        data = _build(loader, node, (), positions)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(line, column, f"{error.problem or error.context}") from error
    except yaml.YAMLError as error:
        raise YamlSyntaxError(1, 1, str(error)) from error
    finally:
        loader.dispose()
    return Document(data, positions)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, positions: dict[Path, tuple[int, int]]) -> Any:
    positions.setdefault(path, _mark(node))
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark)
            if key in result:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            positions[path + (key,)] = _mark(key_node)
            result[key] = _build(loader, value_node, path + (key,), positions)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (index,), positions) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
