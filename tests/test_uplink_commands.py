"""Control operations as signed cloud commands, through `edge run`: the cloud hears what really happened."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from edge.drivers.modbus.profile import load_profile
from edge.events import Kind
from edge.uplink.kinds import UplinkKind
from edge.hil.modbus_sim import SimulatedDevice

from field_rig import PROFILES, SimulatorThread
from uplink_rig import cloud_online, journaled, until

B = "test-house"
CLOSE = {"circuit": "f2-c1", "operator": "tech-7", "reason": "cable replaced and tested"}


def _field(port: int) -> str:
    return f"""buses: [{{name: box, type: tcp, host: 127.0.0.1, port: {port}, timeout_s: 0.3}}]
devices:
  - {{name: mon, bus: box, address: 1, profile: generic-efm8, poll_s: 0.1}}
  - {{name: brk, bus: box, address: 2, profile: generic-breaker, poll_s: 0.1}}
circuits:
  - name: f2-c1
    floor: 2
    box: F2
    currents: [mon.current_a]
    breaker: brk
    safety:
      over_current_a: {{alarm: 32, duration_s: 0.3, hysteresis: 2}}
      power_cut: trip
      stale: {{after_intervals: 20}}
"""


def test_a_breaker_close_refused_while_in_alarm_is_a_failed_command_with_its_error(write_config, building_dir):
    monitor = SimulatedDevice(load_profile(PROFILES / "generic-efm8.yaml"), 1)
    monitor.set_value("current_a", 45.0)  # over the alarm level from the start
    breaker = SimulatedDevice(load_profile(PROFILES / "generic-breaker.yaml"), 2)
    breaker.set_value("closed", True)

    async def scenario(field_port: int):
        async with cloud_online(write_config, building_dir, _field(field_port)) as (_, config_path, cloud):
            daemon = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "run", "--config", str(config_path)],
                env=dict(os.environ), stdout=open(config_path.parent / "daemon.log", "a"), stderr=subprocess.STDOUT,
            )
            try:
                await until(lambda: breaker.value_of("closed") is False, timeout_s=30)  # tripped, still over current
                await until(lambda: cloud.book(B).status.get("state") == "online", timeout_s=30)
                refused = await cloud.command(B, "breaker.close", CLOSE)
                assert refused["outcome"] == "failed"
                assert "still in alarm" in refused["detail"]["error"]
                assert breaker.value_of("closed") is False

                monitor.set_value("current_a", 0.0)
                # the monitor judged the zero (its clear is held while the circuit is cut): the telemetry says so
                await until(lambda: any(e.kind == Kind.POINT_READING and e.body.get("value") == 0.0
                                        for e in journaled(config_path)), timeout_s=30)
                assert not any(e.kind == Kind.CONDITION_CLEARED for e in journaled(config_path)), "the cut's zero clears nothing"
                closed = await cloud.command(B, "breaker.close", CLOSE)
                assert closed["outcome"] == "done" and closed["detail"]["confirmed"] is True
                assert breaker.value_of("closed") is True
                await until(lambda: any(e.kind == Kind.CONDITION_CLEARED for e in journaled(config_path)), timeout_s=30)
                daemon.send_signal(signal.SIGTERM)
                assert daemon.wait(15) == 0
            finally:
                daemon.kill()
            executed = [e.body for e in journaled(config_path) if e.kind == UplinkKind.COMMAND_EXECUTED]
            assert [(e["command"], e["outcome"]) for e in executed] == [("breaker.close", "failed"), ("breaker.close", "done")]
            assert "still in alarm" in executed[0]["detail"]["error"]

    with SimulatorThread([monitor, breaker]) as port:
        asyncio.run(scenario(port))
