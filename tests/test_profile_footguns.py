"""Footguns closed at load, with the line (issue 21, item 5): FC05 words, float arguments keeping their
fraction, byte arguments refused, and YAML 1.1 booleans where text is meant, in profiles and configs."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pydantic import ValidationError

from edge.drivers.modbus.poller import Poller
from edge.drivers.modbus.profile import Profile
from edge.config import building as building_config
from edge.hil.modbus_sim import SimulatedDevice

from conftest import MINIMAL, one_device, problems_of, profile_problems
from field_rig import WireSimulator
from modbus_rig import ONCE, Running, spec

# A relay module whose manual gives FC05 words: 0xFF00 on, 0x0000 off, 0x5500 toggle; and a drive's
# float64 setpoint (two words each way, four registers).
RELAY = {
    "model": "relay",
    "interval_s": ONCE,
    "points": [
        {"name": "relay_1", "function": "coil", "address": 0, "type": "bool"},
        {"name": "speed", "function": "holding", "address": 10, "type": "float64", "unit": "Hz"},
        {"name": "trim", "function": "holding", "address": 20, "type": "float32", "unit": "%"},
    ],
    "commands": [
        {"name": "on_fc05", "function": "coil", "function_code": 5, "address": 0, "values": [1]},
        {"name": "on_manual", "function": "coil", "function_code": 5, "address": 0, "values": [0xFF00]},
        {"name": "off", "function": "coil", "address": 0, "values": [0]},
        {"name": "toggle", "function": "coil", "address": 0, "raw_word": 0x5500},
        {"name": "set_speed", "function": "holding", "address": 10,
         "argument": {"type": "float64", "min": 0, "max": 60, "unit": "Hz"}},
        {"name": "set_trim", "function": "holding", "address": 20,
         "argument": {"type": "float32", "min": -10, "max": 10, "unit": "%"}},
    ],
}


async def _writes(line) -> list[bytes]:
    profile = Profile.model_validate(RELAY)
    simulator = WireSimulator([SimulatedDevice(profile, 1)])
    link = await line.start(simulator)
    poller = Poller([spec("relay", profile, link, 1, timeout_s=1.0)], asyncio.Queue())
    try:
        async with Running(poller):
            outcomes = [await poller.write_command("relay", name) for name in ("on_fc05", "on_manual", "off", "toggle")]
            outcomes.append(await poller.write_command("relay", "set_speed", 2.5))
            outcomes.append(await poller.write_command("relay", "set_trim", -2.25))
    finally:
        await simulator.stop()
    assert all(outcomes), outcomes
    return simulator.writes(1)


def _judge(writes: list[bytes]) -> None:
    assert writes[:4] == [bytes.fromhex("050000ff00"), bytes.fromhex("050000ff00"), bytes.fromhex("0500000000"),
                          bytes.fromhex("0500005500")], [w.hex() for w in writes]
    speed, trim = writes[4], writes[5]
    assert speed[:6] == bytes.fromhex("10000a000408") and struct.unpack(">d", speed[6:]) == (2.5,), "2.5 stays 2.5"
    assert trim[:6] == bytes.fromhex("1000140002" "04") and struct.unpack(">f", trim[6:]) == (-2.25,)


def test_fc05_sends_0xff00_for_on_a_vendor_word_only_as_raw_word_and_floats_keep_their_fraction(modbus_line):
    """Over Modbus TCP and over an RTU line: the same frames."""
    _judge(asyncio.run(_writes(modbus_line)))


def test_an_fc05_value_that_is_neither_on_nor_off_and_a_byte_argument_are_load_errors_at_their_line(write_config, building_dir):
    profile, found = profile_problems(write_config, building_dir, "relay-x", """model: relay-x
points:
  - {name: relay_1, function: coil, address: 0, type: bool}
commands:
  - {name: toggle, function: coil, function_code: 5, address: 0, values: [0x5500]}
  - {name: set_gain, function: holding, address: 4, argument: {type: uint8, min: 0, max: 200}}
  - {name: flash, function: holding, address: 5, raw_word: 0x0203}
""", device="r")
    assert any(p.startswith(profile + ":5:5: commands.0: ") and "FC05 sends a coil ON (0xFF00) or OFF (0x0000)" in p
               and "raw_word: 0x5500" in p for p in found), found
    assert any(p.startswith(profile + ":6:") and "an argument cannot be uint8: a write sets whole registers" in p for p in found), found
    assert any(p.startswith(profile + ":7:5: commands.2: ") and "raw_word is a coil's FC05 word" in p for p in found), found


def test_yaml_booleans_where_a_word_is_meant_name_the_trap_and_the_fix_in_profiles_and_configs(write_config, building_dir):
    profile, found = profile_problems(write_config, building_dir, "switch", """model: switch
points:
  - {name: mode, function: holding, address: 0, type: uint16, enum: {0: off, 1: on, 2: auto}}
  - {name: on, function: coil, address: 0, type: bool}
""", device="s")
    assert any(p.startswith(profile + ":3:") and "off is read as the boolean false, not as the word" in p
               and "quote it ('off')" in p for p in found), found
    assert any(p.startswith(profile + ":3:") and "on is read as the boolean true" in p for p in found), found
    assert any(p.startswith(profile + ":4:") and "points.1.name: on is read as the boolean true" in p for p in found), found

    (problem,) = problems_of(write_config(MINIMAL.replace("id: test-house", "id: yes")))  # text: the unquoted yes is the point
    assert ":2:3: building.id: yes is read as the boolean true" in problem and "quote it ('yes')" in problem


def test_a_quoted_word_and_a_real_boolean_are_left_alone(write_config, building_dir):
    (building_dir / "profiles" / "switch.yaml").write_text("""model: switch
points:
  - {name: mode, function: holding, address: 0, type: uint16, enum: {0: 'off', 1: "on"}}
  - {name: running, function: coil, address: 0, type: bool, alarms: [{when: true, text: running}]}
""")
    assert building_config.load(write_config(one_device("s", "switch"))).devices[0].name == "s"


def test_profile_level_checks_without_a_file():
    with pytest.raises(ValidationError, match="give exactly one of 'values'"):
        Profile.model_validate({**RELAY, "commands": [{"name": "t", "function": "coil", "address": 0, "values": [1], "raw_word": 5}]})
    with pytest.raises(ValidationError, match="an argument is a number, not a string"):
        Profile.model_validate({**RELAY, "commands": [{"name": "t", "function": "holding", "address": 0,
                                                       "argument": {"type": "string", "min": 0, "max": 1}}]})
