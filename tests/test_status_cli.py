"""`edge status` on a simulated building with one device dead and one reader's port missing, daemon up and down."""

from __future__ import annotations

import asyncio
import json

import pytest

from status_rig import MISSING_PORT, Site, until
from conftest import building, edge

pytestmark = pytest.mark.timeout(120)


def _line(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if name in line.split())


def test_status_names_the_dead_device_and_the_missing_port_with_and_without_the_daemon(write_config):
    async def scenario():
        async with Site(write_config, dead_device=True, missing_reader=True) as site:
            await site.start()

            async def both_named():
                status, text = await site.get("/healthz")
                problems = json.loads(text)["problems"]
                return status == 503 and "device pump-room-io offline" in problems and "reader garage-reader offline" in problems
            await until(both_named, 30, "healthz naming the dead device and the missing reader")

            live = await asyncio.to_thread(edge, "status", "--config", str(site.config_path))
            assert live.returncode == 0, live.stderr
            out = live.stdout
            assert out.splitlines()[0].endswith("daemon running (live, from its local status server)")
            assert "OFFLINE" in _line(out, "pump-room-io")
            assert "OFFLINE" in _line(out, "garage-reader") and MISSING_PORT in _line(out, "garage-reader")
            assert "online" in _line(out, "doors-io") and "online" in _line(out, "front-reader")
            assert "ALARMS: none active" in out and "uplink: off" in out and "clock:" in out and "disk left" in out

            assert await site.stop() == 0
            offline = await asyncio.to_thread(edge, "status", "--config", str(site.config_path))
            assert offline.returncode == 0, offline.stderr
            out = offline.stdout
            assert "DAEMON NOT RUNNING: from the journal and the config" in out.splitlines()[0]
            assert "OFFLINE" in _line(out, "pump-room-io")
            assert "OFFLINE" in _line(out, "garage-reader") and "port_missing" in _line(out, "garage-reader")

    asyncio.run(scenario())


def test_status_without_daemon_or_journal_says_so(write_config):
    config = write_config(building())
    result = edge("status", "--config", str(config))
    assert result.returncode == 69
    assert "the daemon is not running and there is no journal" in result.stderr


def test_doctor_names_the_dead_device_and_the_missing_port_with_their_fixes(write_config):
    async def scenario():
        async with Site(write_config, dead_device=True, missing_reader=True) as site:
            result = await asyncio.to_thread(edge, "doctor", "--config", str(site.config_path))
            assert result.returncode == 1, result.stdout + result.stderr
            out = result.stdout
            assert "PASS  config:" in out
            assert f"FAIL  serial port of reader garage-reader: {MISSING_PORT} does not exist" in out
            assert "PASS  serial port of reader front-reader" in out
            assert "FAIL  device pump-room-io: does not answer" in out and "PASS  device doors-io: answers (polled)" in out
            fixes = [line.split("; fix: ", 1)[1] for line in out.splitlines() if "; fix: " in line]  # one line per check
            assert any("ls -l /dev/serial/by-id/" in fix for fix in fixes) and any("Modbus address is 9" in fix for fix in fixes)

            await site.start()  # with the daemon up, it owns the ports: the doctor asks it

            async def judged():
                status, text = await site.get("/healthz")
                return "device pump-room-io offline" in json.loads(text)["problems"]
            await until(judged, 30, "the daemon judging the dead device")
            result = await asyncio.to_thread(edge, "doctor", "--config", str(site.config_path))
            assert result.returncode == 1
            assert "FAIL  device pump-room-io: does not answer" in result.stdout
            assert "PASS  device f1-c1-monitor: answers (the running daemon reports)" in result.stdout
            assert await site.stop() == 0

    asyncio.run(scenario())
