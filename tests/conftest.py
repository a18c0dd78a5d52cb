"""Shared fixtures: a building config in a temp dir, written the way a technician would."""

from __future__ import annotations

import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def building_dir(tmp_path: Path) -> Path:
    """A config directory with a secret file and an empty local profiles/ (the shipped profiles are built in)."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "building.key").write_text(secrets.token_hex(32))
    (tmp_path / "profiles").mkdir()
    return tmp_path


@pytest.fixture
def write_config(building_dir: Path):
    """Write YAML (dedented) as building.yaml and return its path."""

    def write(text: str, name: str = "building.yaml") -> Path:
        path = building_dir / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


MINIMAL = """
building:
  id: test-house
  timezone: Asia/Shanghai
  secret: {file: secrets/building.key}
state_dir: state
"""


def edge(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`edge ARGS` as a technician runs it: a subprocess, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=timeout_s)
