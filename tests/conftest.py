"""Shared fixtures: a building config in a temp dir, written the way a technician would.

Set-up that several test modules share lives in the *_rig.py modules beside this one (field_rig,
modbus_rig, access_rig, community_rig, uplink_rig, status_rig, ...), never in a test module, so
no test imports another. Waiting for something is the rig's own `edge.hil.waiting.until` (async) or
`until_sync`; a rig module's `until` only gives it that rig's default patience.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

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
    """Write YAML (dedented) as building.yaml and return its path. A building without an `http:`
    block of its own gets a free port for its status server: nothing a test starts binds a fixed
    port (the default, 8780, is the one a gateway uses)."""

    def write(text: str, name: str = "building.yaml") -> Path:
        path = building_dir / name
        text = textwrap.dedent(text).lstrip("\n")
        if re.search(r"^building:", text, re.M) and not re.search(r"^http:", text, re.M) and _a_building(text):
            text = text.rstrip("\n") + "\nhttp: {port: 0}\n"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def media():
    """The empty car and two e-bike images from the shared data folder (skipped without it), for
    the vision tests that make their clips from real images."""
    from vision_media import EBIKE, EMPTY_CAR, labelled, need_shared

    need_shared()
    return EBIKE / EMPTY_CAR, labelled("ebike", 2)


def _a_building(text: str) -> bool:
    """A well-formed building file (a test of broken YAML gets its bytes as written)."""
    try:
        return isinstance(yaml.safe_load(text), dict)
    except yaml.YAMLError:
        return False


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
