"""`edge device command|read` (issue 21, item 1): every command of every built-in profile run from the
CLI through the daemon against the simulator, each frame checked on the wire (TCP and RTU); reads with
units and labels; every command audited; the cloud runs only what `cloud_commands` allows."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest

from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.tables import Function
from edge.drivers.modbus.writes import Command
from edge.drivers.modbus.registers import command_words
from edge.config import building as building_config
from edge.config.building import device_profiles
from edge.fieldbus.devices import DeviceCommands, FieldBus, device_specs
from edge.journal import EventQuery, Journal, read_events
from edge.uplink.commands import CommandOutcome, CommandTable
from edge.uplink.wiring import as_command
from edge.hil.modbus_sim import SimulatedDevice
from edge.hil.pty import pty_pair
from edge.hil.waiting import until_sync

from conftest import MINIMAL, Daemon, building, in_background, merged, modbus_device, modbus_rtu, modbus_tcp
from field_rig import BUILT_IN, SimulatorLoop, WireSimulator, edge_cli, socket_ready

REASON = "commissioning the panel, ticket 4411"


def expected_pdu(profile: Profile, command: Command, value: float | None) -> bytes:
    """The request PDU the manual asks for: function code, address, then the values as Modbus packs them."""
    words = command_words(profile, command, value)
    code = command.code
    if code == 5:
        word = (0xFF00 if words[0] else 0x0000) if command.function_code is None else words[0]
        return struct.pack(">BHH", 5, command.address, word)
    if code == 6:
        return struct.pack(">BHH", 6, command.address, words[0])
    if code == 15:
        packed = bytearray((len(words) + 7) // 8)
        for index, bit in enumerate(words):
            packed[index // 8] |= (1 if bit else 0) << (index % 8)
        return struct.pack(">BHHB", 15, command.address, len(words), len(packed)) + bytes(packed)
    return struct.pack(f">BHHB{len(words)}H", 16, command.address, len(words), 2 * len(words), *words)


def value_for(command: Command) -> float | None:
    """A value inside the argument's range that its scale writes exactly (0.7 s is 7 x 100 ms)."""
    argument = command.argument
    if argument is None:
        return None
    return round(argument.min + 0.6 * argument.scale * round((argument.max - argument.min) / argument.scale / 10), 6)


def _with_commands() -> dict[str, Profile]:
    return {name: profile for name, profile in BUILT_IN.items() if profile.commands}


def _run_every_command(capsys, daemon: Daemon, simulator: WireSimulator, units: dict[str, int]) -> list[str]:
    ran = []
    for index, (model, profile) in enumerate(_with_commands().items()):
        device = model.replace("generic-", "d-")
        for command in profile.commands:
            value = value_for(command)
            before = len(simulator.writes(units[model]))
            args = ["device", "command", device, command.name, "--reason", REASON, "--operator", "tech-7",
                    "--config", str(daemon.config)]
            code, out, err = edge_cli(capsys, *args, *(["--arg", f"{value:g}"] if value is not None else []))
            assert code == 0, f"{device} {command.name}: {err}"
            assert out.startswith(f"{device} {command.name}: ") and "journal seq" in out
            (sent,) = simulator.writes(units[model])[before:]
            assert sent == expected_pdu(profile, command, value), f"{device} {command.name} on the wire: {sent.hex()}"
            ran.append(f"{device}.{command.name}")
    return ran


def _config_for_all(write_config, bus: dict) -> tuple[Path, dict[str, int]]:
    units = {model: 10 + index for index, model in enumerate(_with_commands())}
    devices = [modbus_device(model.replace("generic-", "d-"), unit, model, poll_s=0.2, bus="line") for model, unit in units.items()]
    return write_config(building(bus, {"devices": devices})), units


def _devices_for(units: dict[str, int]) -> list[SimulatedDevice]:
    return [SimulatedDevice(BUILT_IN[model], unit) for model, unit in units.items()]


def test_every_command_of_every_built_in_profile_runs_from_the_cli_and_its_frame_is_on_the_wire_over_tcp(write_config, capsys):
    units = {model: 10 + index for index, model in enumerate(_with_commands())}
    simulator = WireSimulator(_devices_for(units))
    with SimulatorLoop(simulator) as thread:
        port = thread.run(simulator.start_tcp())
        config, units = _config_for_all(write_config, modbus_tcp(port, timeout_s=0.5, name="line"))
        with Daemon(config) as daemon:
            until_sync(lambda: socket_ready(config), 20.0)
            ran = _run_every_command(capsys, daemon, simulator, units)
            requested = daemon.events("device.command_requested")
            confirmed = daemon.events("device.command_confirmed")
    total = sum(len(p.commands) for p in _with_commands().values())
    assert len(ran) == total and {"d-breaker.trip", "d-dio8.release_all", "d-dio8.pulse_8", "d-efm8.reset"} <= set(ran)
    assert len(requested) == total and len(confirmed) == total
    first = requested[0].body
    assert first["operator"] == "tech-7" and first["reason"] == REASON and first["via"] == "control"
    assert {e.body["request_seq"] for e in confirmed} == {e.seq for e in requested}


def test_commands_and_reads_over_an_rtu_line_with_labels_units_refusals_and_the_audit(write_config, capsys):
    dio, breaker, efm = BUILT_IN["generic-dio8"], BUILT_IN["generic-breaker"], BUILT_IN["generic-efm8"]
    devices = [SimulatedDevice(dio, 1), SimulatedDevice(breaker, 2), SimulatedDevice(efm, 3)]
    devices[1].set_value("closed", True)
    devices[1].set_value("current", 12.5)
    devices[1].set_registers(Function.INPUT, 2, [2])  # last trip cause: short_circuit
    devices[1].set_registers(Function.INPUT, 3, [0b001])  # front switch in LOCAL
    devices[2].set_value("current_a", 7.25)
    with pty_pair() as pair:
        simulator = WireSimulator(devices, rtu=True)
        with SimulatorLoop(simulator) as thread:
            thread.run(simulator.start_rtu(pair.b, baudrate=38400))
            config = write_config(building(modbus_rtu(pair.a, 38400), {
                "devices": [modbus_device(name, unit, profile, poll_s=0.2, bus="line")
                            for name, unit, profile in (("io", 1, "generic-dio8"), ("brk", 2, "generic-breaker"), ("mon", 3, "generic-efm8"))],
                "circuits": [{"name": "f1-c1", "floor": 1, "box": "F1", "currents": ["mon.current_a"], "breaker": "brk",
                              "safety": {"over_current_a": {"alarm": 32}, "power_cut": "warn"}}]}))
            with Daemon(config) as daemon:
                until_sync(lambda: socket_ready(config), 20.0)
                pulse = edge_cli(capsys, "device", "command", "io", "pulse_3", "--arg", "0.7", "--reason", REASON, "--config", str(config))
                every = edge_cli(capsys, "device", "command", "io", "release_all", "--reason", REASON, "--config", str(config))
                local = edge_cli(capsys, "device", "command", "brk", "trip", "--reason", REASON, "--config", str(config))
                reserved = edge_cli(capsys, "device", "command", "brk", "close", "--reason", REASON, "--config", str(config))
                unknown = edge_cli(capsys, "device", "command", "io", "explode", "--reason", REASON, "--config", str(config))
                wide = edge_cli(capsys, "device", "command", "io", "pulse_1", "--arg", "600", "--reason", REASON, "--config", str(config))
                read = edge_cli(capsys, "device", "read", "brk", "current", "trip_cause", "local_mode", "--config", str(config))
                as_json = edge_cli(capsys, "device", "read", "mon", "--json", "--config", str(config))
                nothing = edge_cli(capsys, "device", "read", "mon", "voltage_x", "--config", str(config))
                shown = edge_cli(capsys, "device", "show", "io", "--config", str(config))
                refused = daemon.events("device.command_refused")
    assert pulse[0] == 0 and every[0] == 0, (pulse, every)
    assert simulator.writes(1) == [bytes.fromhex("05 0202 0007".replace(" ", "")), bytes.fromhex("0f 0000 0008 01 ff".replace(" ", ""))]
    assert local[0] == 1 and "refused: breaker in local mode; nothing was sent to brk" in local[2]
    assert reserved[0] == 1 and "use `edge breaker close f1-c1`" in reserved[2]
    assert unknown[0] == 1 and "io has no command 'explode'; its commands: release_1" in unknown[2]
    assert wide[0] == 1 and "600 is outside 0.1..60 s" in wide[2]
    assert simulator.writes(2) == [], "nothing reached the breaker"
    assert read[0] == 0, read
    lines = read[1].splitlines()
    assert lines[0] == "brk (online)"
    assert any(line.split()[:4] == ["current", "12.5", "A", "float32"] for line in lines), lines
    assert any(line.split()[:3] == ["trip_cause", "short_circuit", "(2)"] for line in lines), lines
    assert any(line.split()[:3] == ["local_mode", "on", "bool"] for line in lines), lines
    rows = {row["point"]: row for row in map(json.loads, as_json[1].splitlines())}
    assert as_json[0] == 0 and rows["current_a"]["value"] == 7.25 and rows["current_a"]["unit"] == "A"
    assert len(rows) == len(efm.points)
    assert nothing[0] == 1 and "mon has no point voltage_x" in nothing[2]
    assert shown[0] == 0 and "pulse_3" in shown[1] and "--arg 0.1..60 s" in shown[1]
    problems = [e.body["problems"][0] for e in refused]
    assert "refused: breaker in local mode" in problems and any("edge breaker close f1-c1" in p for p in problems)
    local_refusal = next(e for e in refused if e.body["problems"] == ["refused: breaker in local mode"])
    assert local_refusal.body["request_seq"] is not None and local_refusal.body["reason"] == REASON


def test_the_cloud_runs_only_the_commands_the_config_allows_and_hears_the_real_outcome(write_config):
    dio = BUILT_IN["generic-dio8"]

    async def scenario():
        simulator = WireSimulator([SimulatedDevice(dio, 1)])
        port = await simulator.start_tcp()
        path = write_config(building(modbus_tcp(port), {"devices": [modbus_device("io", 1, "generic-dio8")], "cloud_commands": ["io.release_2"]}))
        config = building_config.load(path)
        journal = await Journal.open(config.journal_path)
        fieldbus = FieldBus(device_specs(config, device_profiles(config)), journal)
        devices = DeviceCommands(fieldbus, journal, cloud_allowed=frozenset(config.cloud_commands))
        table = CommandTable()
        table.register("device.command", as_command("device.command", devices.cloud_command))
        try:
            async with in_background(fieldbus.run()):
                allowed = await table.run("device.command", {"device": "io", "command": "release_2", "reason": REASON, "operator": "cloud-ops"})
                denied = await table.run("device.command", {"device": "io", "command": "release_1", "reason": REASON, "operator": "cloud-ops"})
        finally:
            await simulator.stop()
            await journal.close()
        return config, allowed, denied, simulator.writes(1)

    config, allowed, denied, writes = asyncio.run(scenario())
    assert allowed.outcome is CommandOutcome.DONE and allowed.detail["outcome"] == "confirmed"
    assert denied.outcome is CommandOutcome.FAILED
    assert denied.detail["error"] == "io.release_1 is not in the config's cloud_commands: the cloud may not run it"
    assert writes == [bytes.fromhex("05 0001 ff00".replace(" ", ""))], "only the allowed command reached the module"
    events = read_events(config.journal_path, EventQuery(kinds=("device.command_refused", "device.command_confirmed"), limit=None))
    assert [(e.kind, e.body["command"], e.body["via"]) for e in events] == [
        ("device.command_confirmed", "release_2", "cloud"), ("device.command_refused", "release_1", "cloud")]


def test_cloud_commands_must_name_a_device_and_a_command_of_its_profile(write_config):
    # text, not data: a problem names its FILE:LINE:COL in it
    path = write_config(MINIMAL + """
buses: [{name: box, type: tcp, host: 127.0.0.1}]
devices: [{name: io, bus: box, address: 1, profile: generic-dio8}]
cloud_commands: [io.release_1, io.explode, pump.start]
""")
    with pytest.raises(building_config.ConfigError) as caught:
        building_config.load(path)
    problems = [str(p) for p in caught.value.problems]
    assert any(":9:32: cloud_commands.1: device 'io' (generic-dio8) has no command 'explode'" in p for p in problems), problems
    assert any("cloud_commands.2: no device named 'pump'" in p for p in problems), problems
    assert building_config.load(write_config(building(modbus_tcp(None, timeout_s=None), {
        "devices": [{"name": "io", "bus": "box", "address": 1, "profile": "generic-dio8"}]}))).cloud_commands == [], "none by default"


def test_a_signed_cloud_device_command_runs_only_what_cloud_commands_allows_through_the_daemon(write_config, building_dir):
    """The real path: a signed command over MQTT to `edge run`, its frame on the wire, the outcome back."""
    from edge.events import Kind
    from edge.hil.broker import Broker
    from uplink_rig import journaled, open_cloud, until, uplink_config

    simulator = WireSimulator([SimulatedDevice(BUILT_IN["generic-dio8"], 1)])

    async def scenario(port: int):
        with Broker() as broker:
            config = uplink_config(write_config, building_dir, broker.port, merged(
                modbus_tcp(port), {"devices": [modbus_device("io", 1, "generic-dio8", poll_s=0.2)], "cloud_commands": ["io.pulse_2"]}))
            cloud = open_cloud(building_dir, broker.port)
            await cloud.start()
            daemon = Daemon(config, stop_s=15).start()
            try:
                await until(lambda: cloud.book("test-house").status.get("state") == "online", timeout_s=30)
                allowed = await cloud.command("test-house", "device.command",
                                              {"device": "io", "command": "pulse_2", "value": 0.5, "reason": REASON, "operator": "ops"})
                denied = await cloud.command("test-house", "device.command",
                                             {"device": "io", "command": "release_all", "reason": REASON, "operator": "ops"})
            finally:
                daemon.stop()
                await cloud.stop()
            return config, allowed, denied, journaled(config)

    with SimulatorLoop(simulator) as thread:
        port = thread.run(simulator.start_tcp())
        config, allowed, denied, events = asyncio.run(scenario(port))
    assert allowed["outcome"] == "done" and allowed["detail"]["outcome"] == "done"
    assert denied["outcome"] == "failed" and "not in the config's cloud_commands" in denied["detail"]["error"]
    assert simulator.writes(1) == [bytes.fromhex("0502010005")], "the pulse as its word; release_all never sent"
    audit = [(e.kind, e.body.get("command"), e.body.get("via")) for e in events if e.kind.startswith("device.command")]
    assert audit == [(Kind.DEVICE_COMMAND_REQUESTED, "pulse_2", "cloud"), (Kind.DEVICE_COMMAND_CONFIRMED, "pulse_2", "cloud"),
                     (Kind.DEVICE_COMMAND_REFUSED, "release_all", "cloud")]
