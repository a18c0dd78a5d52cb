"""Field points end to end, in process: simulator -> FieldBus -> FieldPoints -> journal and breaker."""

from __future__ import annotations

import asyncio

import pytest

from edge.drivers.modbus.profile import load_profile
from edge.drivers.modbus.tables import Function
from edge.config import building as building_config
from edge.config.building import device_profiles
from edge.power.points import FieldPoints
from edge.fieldbus.devices import FieldBus, PointKey, device_specs
from edge.points.status_file import PointState, Snapshot, as_rows, read_snapshot, render_table
from edge.points import Condition
from edge.hil.line import SerialLine
from edge.hil.modbus_sim import Fault, FaultPlan, FieldSimulator, SimulatedDevice, wire_break
from edge.hil.waiting import until

from conftest import MINIMAL, building, merged, modbus_device, modbus_tcp, profile_problems
from field_rig import (BREAKER_STATUS_WORD, PROFILES, circuit_building, circuit_config, circuit_devices, circuit_section, events_of,
                       run_building, run_simulated)


def test_sustained_over_current_raises_an_alarm_trips_once_and_the_breaker_confirms(write_config):
    monitor, breaker, ai = circuit_devices()

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])

        async def scenario(config, field):
            await until(lambda: len(events_of(config.journal_path, "telemetry.point")) >= 3, 15.0)
            for phase in ("current_a", "current_b", "current_c"):  # all three phases at once
                monitor.set_value(phase, 40.0)
            await until(lambda: events_of(config.journal_path, "power.trip_confirmed"), 15.0)
            assert breaker.value_of("closed") is False
            await until(lambda: read_snapshot(config.state_path).points, 15.0)

        return await run_simulated(simulator, lambda port: circuit_config(write_config, port), scenario)

    config = asyncio.run(main())
    raised = events_of(config.journal_path, "alarm.raised")
    over = [e.body for e in raised if e.body["condition"] == "over_threshold" and e.body["severity"] == "alarm"]
    assert {b["point"] for b in over} == {"mon.current_a", "mon.current_b", "mon.current_c"}
    assert over[0]["circuit"] == "f3-c1" and over[0]["floor"] == 3 and over[0]["box"] == "F3"
    assert over[0]["reading"] == 40.0 and over[0]["threshold"] == 32 and over[0]["unit"] == "A"
    sent = events_of(config.journal_path, "power.trip_sent")
    assert len(sent) == 1, "three phases alarming at once give one trip"
    assert sent[0].body["breaker"] == "brk" and sent[0].body["reason"] == "over_current"
    confirmed = events_of(config.journal_path, "power.trip_confirmed")
    assert confirmed[0].body["outcome"] == "confirmed" and confirmed[0].body["readback"] == "open"
    assert not events_of(config.journal_path, "power.reclose_confirmed"), "the gateway never re-closes by itself"
    statuses = [e.body for e in raised if e.body["condition"] == "status"]
    assert not statuses, "a breaker the gateway tripped did not open by itself"


def test_a_trip_the_breaker_does_not_confirm_is_an_alarm(write_config):
    monitor, breaker, ai = circuit_devices()
    breaker.follow_commands = False  # the coil is written but the contacts stay closed

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])

        async def scenario(config, field):
            monitor.set_value("leakage_ma", 800)
            await until(lambda: events_of(config.journal_path, "alarm.trip_unconfirmed"), 15.0)

        return await run_simulated(simulator, lambda port: circuit_config(write_config, port), scenario)

    config = asyncio.run(main())
    (unconfirmed,) = events_of(config.journal_path, "alarm.trip_unconfirmed")
    assert unconfirmed.priority.name == "ALARM"
    assert unconfirmed.body["outcome"] == "failed" and unconfirmed.body["readback"] == "closed"
    assert unconfirmed.body["reason"] == "leakage" and unconfirmed.body["severity"] == "alarm"


def test_a_silent_device_is_offline_and_its_missing_values_raise_no_alarm(write_config):
    monitor, breaker, ai = circuit_devices()

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])

        async def scenario(config, field):
            await until(lambda: field.points[0].value is not None, 15.0)
            monitor.fault = FaultPlan(Fault.SILENT)
            await until(lambda: events_of(config.journal_path, "fault.device_offline"), 15.0)
            await until(lambda: any(p.state is PointState.STALE or p.state is PointState.OFFLINE
                                     for p in read_snapshot(config.state_path).points if p.point.startswith("mon.")), 15.0)
            await until(lambda: all(p.state is PointState.OFFLINE
                                     for p in read_snapshot(config.state_path).points if p.point.startswith("mon.")), 15.0)

        return await run_simulated(simulator, lambda port: circuit_config(write_config, port), scenario)

    config = asyncio.run(main())
    conditions = {(e.body["point"], e.body["condition"]) for e in events_of(config.journal_path, "alarm.raised")}
    assert not {c for c in conditions if c[1] in ("over_threshold", "under_threshold")}
    assert not events_of(config.journal_path, "power.trip_sent")
    offline = events_of(config.journal_path, "fault.device_offline")
    assert [e.source for e in offline] == ["mon"]


@pytest.mark.parametrize("baud", [38400])
def test_a_wire_break_on_an_rtu_pressure_loop_is_a_sensor_fault_never_low_pressure(write_config, baud):
    ai = SimulatedDevice(load_profile(PROFILES / "generic-ai8.yaml"), 3)
    ai.set_value("ch1_ma", 12.0)

    async def main(line: SerialLine):
        simulator = FieldSimulator([ai])
        await simulator.start_rtu(line.device_port, baud)
        riser = circuit_section()["pressure_points"][0]
        riser["safety"] = {**riser["safety"], "drop_rate": {"alarm": 0.05, "window_s": 1}, "stale": {"after_intervals": 20}}
        path = write_config(building({"buses": [{"name": "water", "type": "rtu", "port": line.gateway_port, "baud": baud, "timeout_s": 0.3}],
                                      "devices": [modbus_device("ai", 3, "generic-ai8", bus="water")], "pressure_points": [riser]}))

        async def scenario(config, field):
            await until(lambda: field.points[0].value is not None and abs(field.points[0].value - 0.8) < 1e-9, 15.0)  # 12 mA of 0-1.6 MPa
            ai.play("ch1_ma", wire_break())
            await until(lambda: events_of(config.journal_path, "alarm.raised"), 15.0)
            await asyncio.sleep(1.0)  # longer than the low-pressure duration: it must still not come

        try:
            return await run_building(path, scenario)
        finally:
            await simulator.stop()

    with SerialLine(baud=baud, framing="8N1") as line:
        config = asyncio.run(main(line))
    raised = [e.body for e in events_of(config.journal_path, "alarm.raised")]
    assert [(b["condition"], b["pressure_point"], b["riser"]) for b in raised] == [("sensor_fault", "riser-1", "1")]
    assert raised[0]["reading"] == 0.0 and raised[0]["threshold"] == 3.8 and raised[0]["unit"] == "mA"


def test_a_point_with_its_own_interval_under_a_device_poll_s_is_not_called_stale_every_cycle(write_config):
    """generic-level's probe_temp is read every 30 s whatever the device's poll_s says; its stale
    limit must count 30 s intervals, not the device's 0.05 s (issue 9, defect 1)."""
    path = write_config(building({"buses": [{"name": "box", "type": "tcp", "host": "127.0.0.1", "port": 1502}],
                                  "devices": [modbus_device("lvl", 1, "generic-level", poll_s=0.05)],
                                  "circuits": [{"name": "f1-c1", "floor": 1, "box": "F1", "temperatures": ["lvl.probe_temp", "lvl.level"],
                                                "safety": {"power_cut": "warn", "stale": {"after_intervals": 10}}}]}))
    config = building_config.load(path)
    profiles = device_profiles(config)
    now = [1000.0]
    field = FieldPoints(config, FieldBus(device_specs(config, profiles), journal=None), None, profiles, clock=lambda: now[0])
    probe, level = field.points
    now[0] += 2.0  # 40 of the device's polls, well under 10 of the probe's
    field.tick(now[0])
    assert Condition.STALE in level.active, "the fast point is stale after 10 of its intervals"
    assert Condition.STALE not in probe.active
    now[0] += 300.0
    field.tick(now[0])
    assert Condition.STALE in probe.active


def test_a_faulted_loop_shows_no_scaled_value(write_config):
    """0 mA on a 0-1.6 MPa loop would scale to -0.4 MPa: beside sensor_fault that number is a lie
    (issue 9, defect 2); the row shows no value and the telemetry keeps only the loop current."""
    ai = SimulatedDevice(load_profile(PROFILES / "generic-ai8.yaml"), 3)
    ai.set_value("ch1_ma", 12.0)

    async def main():
        simulator = FieldSimulator([ai])
        port = await simulator.start_tcp()
        path = write_config(building(modbus_tcp(port, name="water"), {
            "devices": [modbus_device("ai", 3, "generic-ai8", poll_s=0.05, bus="water")],
            "pressure_points": [{"name": "riser-1", "point": "ai.ch1_ma", "safety": {
                "measures": "pressure", "sensor": {"value_at_4ma": 0.0, "value_at_20ma": 1.6}, "low_pressure": {"alarm": 0.15},
                "stale": {"after_intervals": 20}}}]}))

        async def scenario(config, field):
            await until(lambda: field.points[0].value is not None, 15.0)
            ai.set_value("ch1_ma", 0.0)
            await until(lambda: field.statuses()[0].state is PointState.SENSOR_FAULT, 15.0)
            (row,) = field.statuses()
            assert row.value is None
            read_at = row.read_at
            await until(lambda: field.statuses()[0].read_at != read_at, 15.0)  # read again, still faulted
            assert field.statuses()[0].value is None

        try:
            return await run_building(path, scenario)
        finally:
            await simulator.stop()

    config = asyncio.run(main())
    faulted = [e.body for e in events_of(config.journal_path, "telemetry.point") if e.body["loop_ma"] == 0.0]
    assert faulted and all(body["value"] is None for body in faulted)


def test_a_breaker_that_trips_by_itself_raises_its_alarms_and_clears_them(write_config):
    monitor, breaker, ai = circuit_devices()
    breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, [0b000])  # remote, healthy

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])
        port = await simulator.start_tcp()
        path = write_config(merged(circuit_building(port, policy="warn"), {"alarms": [
            {"point": "brk.trip_cause", "when": ["overload", "short_circuit"], "severity": "alarm", "text": "overload or short circuit on the circuit"},
            {"point": "mon.cable_temp_1", "above": 70, "severity": "warning", "text": "cable warm by the monitor's own reckoning"}]}))

        async def scenario(config, field):
            await until(lambda: field.status[PointKey("brk", "closed")].value is True, 15.0)
            breaker.set_value("closed", False)  # contacts open, nobody asked
            breaker.set_registers(Function.INPUT, 2, [2])  # trip cause: short circuit
            breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, [0b010])  # protection trip
            await until(lambda: len(events_of(config.journal_path, "alarm.raised")) >= 3, 15.0)
            rows = {row.point: row for row in field.statuses()}
            assert rows["brk.closed"].label == "off" and rows["brk.closed"].state is PointState.ALARM
            assert rows["brk.trip_cause"].label == "short_circuit" and rows["brk.closed"].name == "f3-c1"
            assert "tripped by its own protection" in render_table(as_rows(Snapshot(0, field.statuses()), 0, 60))
            breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, [0b000])
            breaker.set_registers(Function.INPUT, 2, [0])
            breaker.set_value("closed", True)  # reset and closed at the box
            await until(lambda: len(events_of(config.journal_path, "alarm.cleared")) >= 3, 15.0)
            assert {row.state for row in field.statuses() if row.point.startswith("brk.")} == {PointState.OK}

        try:
            return await run_building(path, scenario)
        finally:
            await simulator.stop()

    config = asyncio.run(main())
    raised = {e.body["text"]: e.body for e in events_of(config.journal_path, "alarm.raised")}
    assert set(raised) == {"tripped by its own protection", "breaker opened without a trip from the gateway",
                           "overload or short circuit on the circuit"}
    own = raised["tripped by its own protection"]
    assert own["circuit"] == "f3-c1" and own["floor"] == 3 and own["point"] == "brk.protection_trip"
    assert own["condition"] == "status" and own["severity"] == "alarm" and own["label"] == "on"
    assert raised["overload or short circuit on the circuit"]["label"] == "short_circuit"
    cleared = {e.body["text"] for e in events_of(config.journal_path, "alarm.cleared")}
    assert cleared == set(raised)
    assert not events_of(config.journal_path, "power.trip_sent")


def test_a_config_alarm_naming_a_label_the_point_lacks_is_a_config_error_with_its_line(write_config):
    # text, not data: the problems name the alarms' FILE:LINE:COL in it
    path = write_config(MINIMAL + """
buses: [{name: box, type: tcp, host: 127.0.0.1, port: 1502}]
devices: [{name: brk, bus: box, address: 2, profile: generic-breaker}]
alarms:
  - {point: brk.trip_cause, when: [overheat], text: too hot}
  - {point: brk.closed, above: 1, text: nonsense}
""")
    with pytest.raises(building_config.ConfigError) as caught:
        building_config.load(path)
    problems = [str(p) for p in caught.value.problems]
    assert any(":10:5: alarms.0: 'overheat' is not a label of the point; its labels: none, overload, remote, short_circuit" in p
               for p in problems), problems
    assert any(":11:5: alarms.1: 'above'/'below' need a number" in p for p in problems), problems


EFM_ALARM_WORD = 17  # input register 17: bit 0 leakage alarm, 1 temperature, 2 sensor fault, 3 CT break


def test_a_ct_break_voids_the_leakage_reading_so_its_zero_never_clears_the_alarm(write_config):
    monitor, breaker, ai = circuit_devices()
    monitor.set_registers(Function.INPUT, 6, [800])  # leakage 800 mA, over the 500 mA alarm

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])

        async def scenario(config, field):
            leakage = next(p for p in field.points if str(p.key) == "mon.leakage_ma")
            await until(lambda: Condition.OVER_THRESHOLD in leakage.active, 15.0)
            monitor.set_registers(Function.INPUT, 6, [0])  # the CT is open: no current reaches the monitor
            monitor.set_registers(Function.INPUT, EFM_ALARM_WORD, [0b1000])
            await until(lambda: Condition.INVALID in leakage.active, 15.0)
            read_at = leakage.read_at
            await until(lambda: leakage.read_at != read_at, 15.0)  # polled again, still broken
            row = next(r for r in field.statuses() if r.point == "mon.leakage_ma")
            assert row.state is PointState.INVALID and row.value is None
            assert Condition.OVER_THRESHOLD in leakage.active, "a voided 0 must not clear the leakage alarm"
            monitor.set_registers(Function.INPUT, EFM_ALARM_WORD, [0])
            monitor.set_registers(Function.INPUT, 6, [810])  # CT back: the leakage is still there
            await until(lambda: Condition.INVALID not in leakage.active, 15.0)

        return await run_simulated(simulator, lambda port: circuit_config(write_config, port, policy="warn"), scenario)

    config = asyncio.run(main())
    raised = [e.body for e in events_of(config.journal_path, "alarm.raised") if e.body["point"] in ("mon.leakage_ma", "mon.ct_break")]
    assert [(b["point"], b["condition"]) for b in raised] == [
        ("mon.leakage_ma", "over_threshold"), ("mon.ct_break", "status"), ("mon.leakage_ma", "invalid")
    ] or [(b["point"], b["condition"]) for b in raised] == [
        ("mon.leakage_ma", "over_threshold"), ("mon.leakage_ma", "invalid"), ("mon.ct_break", "status")
    ]
    invalid = next(b for b in raised if b["condition"] == "invalid")
    assert invalid["voided_by"] == "mon.ct_break" and invalid["reading"] is None
    cleared = [(e.body["point"], e.body["condition"]) for e in events_of(config.journal_path, "alarm.cleared")]
    assert ("mon.leakage_ma", "invalid") in cleared and ("mon.ct_break", "status") in cleared
    assert ("mon.leakage_ma", "over_threshold") not in cleared


def test_a_trip_refused_in_local_mode_is_journaled_with_its_reason_and_never_written(write_config):
    monitor, breaker, ai = circuit_devices()
    breaker.set_registers(Function.INPUT, BREAKER_STATUS_WORD, [0b001])  # front switch in LOCAL

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])

        async def scenario(config, field):
            monitor.set_value("leakage_ma", 800)
            await until(lambda: events_of(config.journal_path, "power.trip_refused"), 15.0)

        return await run_simulated(simulator, lambda port: circuit_config(write_config, port), scenario), list(simulator.requests)

    config, requests = asyncio.run(main())
    (refused,) = events_of(config.journal_path, "power.trip_refused")  # nothing sent: refused, not unconfirmed
    assert refused.body["refused"] == "breaker in local mode" and refused.body["reason"] == "leakage"
    assert not events_of(config.journal_path, "alarm.trip_unconfirmed")
    assert (2, 5) not in requests, "a breaker in local mode is not sent the trip"


def test_new_profile_fields_are_reported_at_their_line_in_the_profile(write_config, building_dir):
    profile, found = profile_problems(write_config, building_dir, "odd-relay", """model: odd-relay
addressing: modicon
points:
  - {name: leakage, function: input, address: 30007, type: uint16, void_if: {point: ct_open, when: true}}
  - {name: mode, function: holding, address: 30002, type: uint16}
commands:
  - {name: flash, function: coil, function_code: 6, address: 1, values: [7]}
""", device="r")
    assert any(p.startswith(profile + ":5:5: points.1: ") and "30002 is not a holding register number" in p for p in found), found
    assert any(p.startswith(profile + ":7:5: commands.0: ") and "function code 6 does not write coils" in p for p in found), found



def test_a_reload_that_changes_another_point_keeps_a_circuit_in_alarm_from_being_reclosed(write_config):
    """A reload rebuilt every circuit from the new file but re-bound only the changed ones to their
    points: the re-close's 'still in alarm' check compared the points' old circuit with the new one
    and let an operator re-energise a circuit over its current limit."""
    monitor, breaker, ai = circuit_devices()
    answers = []

    async def main():
        simulator = FieldSimulator([monitor, breaker, ai])
        port = await simulator.start_tcp()
        path = write_config(circuit_building(port, policy="warn"))

        async def scenario(config, field):
            monitor.set_value("current_a", 40.0)
            await until(lambda: field.points[0].active.get(Condition.OVER_THRESHOLD) is not None, 15.0)
            edited = circuit_building(port, policy="warn")
            edited["pressure_points"][0]["safety"]["low_pressure"]["warning"] = 0.3
            retuned = building_config.load(write_config(edited, "reloaded.yaml"))
            assert field.retune(retuned) == ["riser-1"]
            answers.append(await field.reclose({"circuit": "f3-c1", "operator": "tech-7", "reason": "checked the cable myself"}))

        try:
            return await run_building(path, scenario)
        finally:
            await simulator.stop()

    config = asyncio.run(main())
    (answer,) = answers
    assert answer["ok"] is False and answer["error"] == "still in alarm: mon.current_a"
    assert not events_of(config.journal_path, "power.reclose_requested")
