"""The building config as every `edge` command takes it: one `--config` option, one way to load.

A technician sees the same option and the same problem list (`FILE:LINE:COL: path: message`, one
per line on stderr) whichever command they ran, so both are written once here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.config import building as building_config
from edge.config.building import DEFAULT_CONFIG, BuildingConfig, ConfigError


def add_option(parser: argparse.ArgumentParser) -> None:
    """`--config/-c FILE`, defaulting to the installed building's config."""
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG, help=f"building config (default {DEFAULT_CONFIG})")


def load_or_report(path: Path, summary: bool = False) -> BuildingConfig | None:
    """The config, or None after printing every problem to stderr (and a count, with `summary`)."""
    try:
        return building_config.load(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        if summary:
            print(f"{path}: {len(error.problems)} problem(s); nothing was started", file=sys.stderr)
        return None
