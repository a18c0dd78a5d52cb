"""Control operations as signed cloud commands, through `edge run`: the cloud hears what really happened."""

from __future__ import annotations

import asyncio

from edge.drivers.modbus.profile import load_profile
from edge.events import Kind
from edge.uplink.kinds import UplinkKind
from edge.hil.modbus_sim import SimulatedDevice

from conftest import Daemon, one_circuit
from field_rig import PROFILES, SimulatorThread
from uplink_rig import cloud_online, journaled, until

B = "test-house"
CLOSE = {"circuit": "f2-c1", "operator": "tech-7", "reason": "cable replaced and tested"}


def test_a_breaker_close_refused_while_in_alarm_is_a_failed_command_with_its_error(write_config, building_dir):
    monitor = SimulatedDevice(load_profile(PROFILES / "generic-efm8.yaml"), 1)
    monitor.set_value("current_a", 45.0)  # over the alarm level from the start
    breaker = SimulatedDevice(load_profile(PROFILES / "generic-breaker.yaml"), 2)
    breaker.set_value("closed", True)

    async def scenario(field_port: int):
        async with cloud_online(write_config, building_dir, one_circuit(field_port, stale={"after_intervals": 20})) as (_, config_path, cloud):
            with Daemon(config_path, log=config_path.parent / "daemon.log") as daemon:
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
                assert daemon.stop(timeout_s=15) == 0
            executed = [e.body for e in journaled(config_path) if e.kind == UplinkKind.COMMAND_EXECUTED]
            assert [(e["command"], e["outcome"]) for e in executed] == [("breaker.close", "failed"), ("breaker.close", "done")]
            assert "still in alarm" in executed[0]["detail"]["error"]

    with SimulatorThread([monitor, breaker]) as port:
        asyncio.run(scenario(port))
