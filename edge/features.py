"""The building's features, found by their packages: every `edge/<name>/feature.py`.

Nothing lists the features by hand, so a new one is a new package with a `feature.py` and
nothing else to edit (edge/feature.py says what it declares).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import edge
from edge.feature import Feature


@functools.cache
def every() -> tuple[Feature, ...]:
    """Every feature, in its declared order."""
    found: list[Feature] = []
    for name in sorted(_packages()):
        found.append(importlib.import_module(f"edge.{name}.feature").FEATURE)
    names = [feature.name for feature in found]
    if len(set(names)) != len(names):
        raise ValueError(f"two features share a name: {sorted(names)}")
    return tuple(sorted(found, key=lambda feature: (feature.order, feature.name)))


def _packages() -> set[str]:
    """The packages under `edge` with a feature.py, by file: the gateway's own folder (where this
    module is: an editable install may make `edge` a namespace whose path names no folder) and any
    other folder on `edge`'s path. Nothing else is imported to look (not the rig's nor the fleet's)."""
    folders = {Path(__file__).resolve().parent} | {Path(entry).resolve() for entry in edge.__path__ if Path(entry).is_dir()}
    return {package.name for folder in folders for package in folder.iterdir()
            if package.is_dir() and package.name.isidentifier() and (package / "feature.py").is_file()}


def modules(part: str) -> Iterator[ModuleType]:
    """That part of every feature that has one (e.g. "kinds"), imported, in the features' order."""
    for feature in every():
        if getattr(feature, part):
            yield feature.module(part)
