"""The building's features, found by their packages: every `edge/<name>/feature.py`.

Nothing lists the features by hand, so a new one is a new package with a `feature.py` and
nothing else to edit (edge/feature.py says what it declares).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import edge
from edge.feature import Feature


@functools.cache
def every() -> tuple[Feature, ...]:
    """Every feature, in its declared order."""
    found: list[Feature] = []
    for package in pkgutil.iter_modules(edge.__path__):  # by file: the rig's and the fleet's packages are not imported
        if package.ispkg and (Path(package.module_finder.path) / package.name / "feature.py").is_file():
            found.append(importlib.import_module(f"edge.{package.name}.feature").FEATURE)
    names = [feature.name for feature in found]
    if len(set(names)) != len(names):
        raise ValueError(f"two features share a name: {sorted(names)}")
    return tuple(sorted(found, key=lambda feature: (feature.order, feature.name)))


def modules(part: str) -> Iterator[ModuleType]:
    """That part of every feature that has one (e.g. "kinds"), imported, in the features' order."""
    for feature in every():
        if getattr(feature, part):
            yield feature.module(part)
