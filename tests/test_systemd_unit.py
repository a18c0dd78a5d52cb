"""The unit file passes systemd-analyze verify without a single warning."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

UNIT = REPO / "systemd" / "edge.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_verifies_without_warnings(unit_to_analyze: Path):
    result = subprocess.run(["systemd-analyze", "verify", str(unit_to_analyze)], capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output == "", f"systemd-analyze printed:\n{output}"


def test_unit_has_the_hardening_and_notify_settings():
    text = UNIT.read_text()
    for setting in ("Type=notify", "ExecReload=/opt/edge/bin/edge reload", "WatchdogSec=", "Restart=on-failure", "User=edge", "SupplementaryGroups=dialout video",
                    "StateDirectory=edge", "ConfigurationDirectory=edge", "ProtectSystem=strict", "ProtectHome=yes",
                    "PrivateTmp=yes", "NoNewPrivileges=yes", "DevicePolicy=closed", "RestrictAddressFamilies="):
        assert setting in text, setting


def test_the_unit_sets_a_descriptor_limit_the_daemon_cannot_set_itself():
    """@resources is filtered (no setrlimit), so the unit gives the limit the status server budgets a share of."""
    text = UNIT.read_text()
    assert "~@privileged @resources" in text
    limits = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("LimitNOFILE=")]
    assert len(limits) == 1 and int(limits[0].split(":")[0]) >= 4096, limits
