"""Which scenario files a run plays, where their data is, and where a played one's state is kept.

The scenarios shipped with the rig (`SCENARIOS`), a directory standing for its *.yaml files, `-k`
patterns, the data root the e-bike images and model weights come from (`--data`, $HIL_DATA), and
`--keep`, which copies a run's directory out of its short temporary path.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.hil import scenario as sc

SCENARIOS = Path(__file__).resolve().parent / "scenarios"  # package data of building-edge-rig, so also when installed
DATA_ENV = "HIL_DATA"


def data_root(given: Path | None = None) -> Path | None:
    """Where a scenario's images and model files are: `--data DIR`, else $HIL_DATA."""
    if given is not None:
        return Path(given)
    return Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None


class Skipped(Exception):
    """The scenario needs data that is not here (the e-bike images, a model's weights)."""


def scenario_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its *.yaml files (not its subdirectories)."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return found


@dataclass(frozen=True)
class Listed:
    """A scenario file as `--list` shows it: its name, or why it cannot be read (it still runs, to say so)."""

    path: Path
    name: str
    problem: str = ""


def listing(paths: list[Path], patterns: Sequence[str] = ()) -> list[Listed]:
    """The scenario files under `paths` that `-k` selects (all of them without a pattern).

    A pattern selects a file when it matches part of the file's stem or of the scenario's name,
    case-insensitive, with shell wildcards (`-k access`, `-k 'elevator-*-car'`); several select
    what any of them does.
    """
    found = []
    for path in scenario_paths(paths):
        try:
            entry = Listed(path, sc.load(path).scenario.name)
        except sc.ScenarioError as invalid:
            entry = Listed(path, path.stem, str(invalid).splitlines()[0])
        if not patterns or any(_matches(pattern, (path.stem, entry.name)) for pattern in patterns):
            found.append(entry)
    return found


def _matches(pattern: str, texts: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(text.lower(), f"*{pattern.lower()}*") for text in texts)


def keep_state(workdir: Path, into: Path, stem: str) -> Path:
    """Copy a played scenario's directory to INTO/STEM (STEM-2, ... when that is taken) and point
    its building.yaml there, so `edge events --config INTO/STEM/building.yaml` reads the kept journal.

    The run itself plays in a short temporary path, because its Unix sockets must fit in 107
    bytes wherever INTO is; sockets and FIFOs are left out (nothing holds them any more).
    """
    into.mkdir(parents=True, exist_ok=True)
    target, number = into / stem, 1
    while target.exists():
        number += 1
        target = into / f"{stem}-{number}"
    shutil.copytree(workdir, target, symlinks=True, ignore=_not_files)
    config = target / "building.yaml"
    if config.is_file():
        config.write_text(config.read_text().replace(str(workdir), str(target.resolve())))
    return target


def _not_files(folder: str, names: list[str]) -> list[str]:
    kept = (stat.S_ISREG, stat.S_ISDIR, stat.S_ISLNK)
    return [name for name in names if not any(kind(os.lstat(os.path.join(folder, name)).st_mode) for kind in kept)]
