"""Event bodies as the gateway's source writes them: the fields of each kind's body, and their JSON
types where the code makes them certain, read from every `Event(kind=..., body={...})` in edge/.

Most bodies are plain dicts built where each event is made, so their schema is read from those
places (a feature that types a body declares a pydantic model in its `Kinds`, which wins). Kept
apart from the contract because it reads Python, not the wire: the document only asks `body_schema`.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge.events import kinds as event_kinds
from edge.events import Priority

EDGE_SOURCE = Path(__import__("edge").__file__).parent

_CALL_TYPES = {"str": "string", "int": "integer", "len": "integer", "float": "number", "bool": "boolean",
               "sorted": "array", "list": "array", "dict": "object", "isoformat": "string", "hexdigest": "string",
               "hex": "string", "lower": "string", "upper": "string", "strip": "string", "join": "string"}


def _type(node: ast.AST) -> set[str] | None:
    """The JSON types a body value's expression can have, or None when the source does not say for certain."""
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None:
            return {"null"}
        if isinstance(value, bool):
            return {"boolean"}
        if isinstance(value, int):
            return {"integer"}
        if isinstance(value, float):
            return {"number"}
        if isinstance(value, str):
            return {"string"}
        return None
    if isinstance(node, ast.JoinedStr):
        return {"string"}
    if isinstance(node, (ast.List, ast.ListComp, ast.Tuple)):
        return {"array"}
    if isinstance(node, (ast.Dict, ast.DictComp)):
        return {"object"}
    if isinstance(node, ast.Compare) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        return {"boolean"}
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name == "round":
            return {"integer"} if len(node.args) == 1 else {"number"}
        if name in _CALL_TYPES:
            return {_CALL_TYPES[name]}
        return None
    if isinstance(node, ast.IfExp):
        a, b = _type(node.body), _type(node.orelse)
        return a | b if a is not None and b is not None else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr)):
        return {"string"}
    return None


def _kinds_in(node: ast.AST | None) -> list[str]:
    """Every kind an expression names, as `Kind.X` or a feature's `DoorKind.X` (`Kind.A if ok else Kind.B` names two)."""
    if node is None:
        return []
    return [str(event_kinds.ENUMS[n.value.id][n.attr]) for n in ast.walk(node) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id in event_kinds.ENUMS and n.attr in event_kinds.ENUMS[n.value.id].__members__]


def _priority_of(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Priority" \
            and node.attr in Priority.__members__:
        return Priority[node.attr].name.lower()
    return None


def _assignments(function: ast.AST) -> dict[str, list[ast.AST]]:
    """name -> the expressions assigned to it in this function (for `kind=kind`, `body=body`)."""
    found: dict[str, list[ast.AST]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found.setdefault(node.target.id, []).append(node.value)
    return found


def _resolve(node: ast.AST | None, names: dict[str, list[ast.AST]]) -> list[ast.AST]:
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    return [] if node is None else [node]


@lru_cache(maxsize=1)
def body_sites() -> dict[str, dict[str, Any]]:
    """Kind -> {"fields": {name: set of types or None}, "priorities": set, "sites": [file:line]} from the source."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(EDGE_SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for scope in scopes:
            names = _assignments(scope)
            calls = [n for n in ast.walk(scope) if isinstance(n, ast.Call)]
            for node in calls:
                func = node.func
                if not ((isinstance(func, ast.Name) and func.id == "Event") or (isinstance(func, ast.Attribute) and func.attr == "Event")):
                    continue
                args = {k.arg: k.value for k in node.keywords if k.arg}
                for name, value in zip(("kind", "priority", "source", "body"), node.args):
                    args.setdefault(name, value)
                kinds = sorted({k for expr in _resolve(args.get("kind"), names) for k in _kinds_in(expr)})
                priorities = {p for expr in _resolve(args.get("priority"), names) if (p := _priority_of(expr))}
                bodies = [b for b in _resolve(args.get("body"), names) if isinstance(b, ast.Dict)]
                for kind in kinds:
                    entry = found.setdefault(kind, {"fields": {}, "priorities": set(), "sites": set()})
                    site = f"{path.relative_to(EDGE_SOURCE.parent)}:{node.lineno}"
                    if site in entry["sites"]:
                        continue  # a nested function's call seen again from its outer scope
                    entry["sites"].add(site)
                    entry["priorities"] |= priorities
                    for body in bodies:
                        for key, value in zip(body.keys, body.values):
                            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                                seen = entry["fields"].get(key.value, set())
                                new = _type(value)
                                entry["fields"][key.value] = None if seen is None or new is None else seen | new
    return found


def _json_type(types: set[str] | None) -> dict[str, Any]:
    if not types:
        return {}
    if {"integer", "number"} <= types:
        types = types - {"integer"}
    ordered = sorted(types)
    return {"type": ordered[0] if len(ordered) == 1 else ordered}


def body_schema(kind: str) -> dict[str, Any]:
    site = body_sites().get(kind, {"fields": {}, "priorities": set(), "sites": []})
    schema: dict[str, Any] = {"type": "object", "title": f"{kind} body", "description": event_kinds.words(kind)}
    if site["priorities"]:
        schema["x-priority"] = sorted(site["priorities"])
    model = event_kinds.body(kind)
    if model is not None:
        declared = model.model_json_schema()
        if "$defs" in declared:
            raise ValueError(f"{model.__name__}: a body model is flat (a nested model has no place in the document yet)")
        schema["properties"] = declared.get("properties", {})
        if declared.get("required"):
            schema["required"] = declared["required"]
    elif site["fields"]:
        schema["properties"] = {name: _json_type(types) for name, types in sorted(site["fields"].items())}
    schema["additionalProperties"] = True  # bodies grow: a field a newer gateway adds is no error
    return schema
