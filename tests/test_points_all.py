"""`edge points --all` (issue 21, item 2): every point of every device, not only those a circuit or an
alarm uses, with value, unit, state, age, the point voiding it, and every alarm active on it (an
invalid reading keeps the alarm it holds)."""

from __future__ import annotations

import json

from edge.drivers.modbus.tables import Function
from edge.hil.modbus_sim import SimulatedDevice
from edge.hil.waiting import until_sync

from conftest import Daemon, building, modbus_device, modbus_tcp
from field_rig import BUILT_IN, SimulatorLoop, WireSimulator, edge_cli, socket_ready

EFM_ALARM_WORD = 17  # input register 17: bit 3 CT break, which voids the leakage reading


def test_points_all_shows_every_point_and_an_invalid_reading_with_its_alarm(write_config, capsys):
    monitor = SimulatedDevice(BUILT_IN["generic-efm8"], 1)
    monitor.set_value("current_a", 10.0)
    monitor.set_registers(Function.INPUT, 6, [800])  # leakage 800 mA: over its 500 mA alarm
    breaker = SimulatedDevice(BUILT_IN["generic-breaker"], 2)
    breaker.set_value("closed", True)
    breaker.set_registers(Function.INPUT, 2, [1])  # last trip cause: overload
    level = SimulatedDevice(BUILT_IN["generic-level"], 3)
    level.set_value("level", 3.25)
    simulator = WireSimulator([monitor, breaker, level])
    with SimulatorLoop(simulator) as thread:
        port = thread.run(simulator.start_tcp())
        config = write_config(building(modbus_tcp(port, timeout_s=0.5), {
            "devices": [modbus_device("mon", 1, "generic-efm8"), modbus_device("brk", 2, "generic-breaker"),
                        modbus_device("tank", 3, "generic-level")],
            "circuits": [{"name": "f3-c1", "floor": 3, "box": "F3", "currents": ["mon.current_a"], "leakage": "mon.leakage_ma",
                          "breaker": "brk", "safety": {"leakage_ma": {"alarm": 500, "duration_s": 0.2}, "power_cut": "warn",
                                                       "stale": {"after_intervals": 50}}}],
        }))

        def rows():
            code, out, _ = edge_cli(capsys, "points", "--all", "--json", "--config", str(config))
            return {f"{r['device']}.{r['point']}": r for r in map(json.loads, out.splitlines())} if code == 0 else {}

        with Daemon(config):
            until_sync(lambda: socket_ready(config), 20.0)
            until_sync(lambda: any("over threshold" in a for a in rows().get("mon.leakage_ma", {}).get("alarms", [])), 20.0)
            monitor.set_registers(Function.INPUT, 6, [0])  # the CT opens: no current reaches the monitor
            monitor.set_registers(Function.INPUT, EFM_ALARM_WORD, [0b1000])
            voided = until_sync(lambda: (found := rows()).get("mon.leakage_ma", {}).get("state") == "invalid" and found, 20.0)
            table = edge_cli(capsys, "points", "--all", "--config", str(config))
    every = {f"{device}.{point.name}" for device, model in (("mon", "generic-efm8"), ("brk", "generic-breaker"), ("tank", "generic-level"))
             for point in BUILT_IN[model].points}
    assert set(voided) == every, "every point of every device"
    leakage = voided["mon.leakage_ma"]
    assert leakage["value"] is None and leakage["voided_by"] == "mon.ct_break" and leakage["unit"] == "mA"
    assert "f3-c1: alarm: over threshold" in leakage["alarms"], "invalid, and the alarm it holds"
    assert voided["tank.level"]["value"] == 3.25 and voided["tank.level"]["state"] == "ok" and voided["tank.level"]["age_s"] is not None
    assert voided["brk.trip_cause"]["label"] == "overload" and voided["brk.trip_cause"]["value"] == 1
    assert voided["mon.ct_break"]["state"] == "alarm" and voided["mon.ct_break"]["alarms"]
    code, out, _ = table
    assert code == 0 and out.splitlines()[0].split()[:3] == ["DEVICE", "POINT", "VALUE"]
    line = next(line for line in out.splitlines() if line.split()[:2] == ["mon", "leakage_ma"])
    assert "invalid" in line and "(voided by mon.ct_break)" in line and "(f3-c1: alarm: over threshold)" in line
