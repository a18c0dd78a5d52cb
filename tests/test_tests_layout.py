"""The tests' own shape: no test module imports another (a test module broke when another dropped a
helper it borrowed); what several share lives in the *_rig.py helper modules."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_another():
    borrowed = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            # `test_x`, and the same module as `tests.test_x` (it imports as either)
            borrowed += [f"{path.name} imports {module}" for module in modules
                         if any(part.startswith("test_") for part in module.split(".")[:2])]
    assert not borrowed, "move what they share into a *_rig.py module: " + "; ".join(borrowed)
