"""The unit's hardening, as systemd itself scores it: 2.5 or lower, with the device, netlink and network access the daemon needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

UNIT = REPO / "systemd" / "edge.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_security_scores_the_unit_at_most_2_5(unit_to_analyze: Path):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit_to_analyze)], capture_output=True, text=True)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze cannot score a unit file offline")
    score = re.search(r"Overall exposure level for edge\.service: ([0-9.]+)", result.stdout)
    assert score, result.stdout[-2000:] + result.stderr
    assert float(score.group(1)) <= 2.5, result.stdout


def test_the_hardening_keeps_what_the_daemon_needs():
    text = UNIT.read_text()
    families = next(line for line in text.splitlines() if line.startswith("RestrictAddressFamilies="))
    for family in ("AF_UNIX", "AF_INET", "AF_NETLINK"):  # sd_notify and control socket; Modbus TCP, uplink, status server; udev
        assert family in families
    for device in ("char-ttyUSB rw", "char-ttyACM rw", "char-video4linux rw"):
        assert f"DeviceAllow={device}" in text
    assert "PrivateNetwork=" not in text and "PrivateDevices=" not in text
    assert "SystemCallFilter=adjtimex" in text, "the NTP state is read with adjtimex"
    assert "SystemCallFilter=setpriority" in text, "the camera's inference lowers its own priority"
    assert "\nProcSubset=" not in text, "onnxruntime reads /proc/cpuinfo"
