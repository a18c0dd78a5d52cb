"""What real device maps say, decoded by the poller from registers laid out as a manual prints
them (issue 9, items 2 and 4). The simulator's raw tables are set word by word here, so the
test does not lean on the decoding it checks."""

from __future__ import annotations

import asyncio

from edge.drivers.modbus.observations import Reading
from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.tables import Function
from edge.hil.modbus_sim import SimulatedDevice

from modbus_rig import ONCE, polled, spec, wait_for


def _profile(document: dict) -> Profile:
    return Profile.model_validate({"model": "t", "interval_s": ONCE, **document})


async def _one_pass(profile: Profile, setup) -> dict[str, object]:
    """Poll a device once; the value of every point reported."""
    device = SimulatedDevice(profile, 1)
    setup(device)
    queue: asyncio.Queue = asyncio.Queue()
    seen: list = []
    async with polled([device], lambda link: [spec("dev", profile, link, 1)], queue):
        while len({o.point for o in seen if isinstance(o, Reading)}) < len(profile.points):
            await wait_for(queue, lambda o: True, seen)
    return {o.point: o.value for o in seen if isinstance(o, Reading)}


# An 8-channel input module's map: channel values at 30001.., a validity bitmap at 30009 whose
# bit n says channel n+1 holds a valid value.
AI_WITH_BITMAP = {
    "points": [
        {"name": "ch1", "function": "input", "address": 0, "type": "uint16", "void_if": {"point": "ch1_valid", "when": False}},
        {"name": "ch2", "function": "input", "address": 1, "type": "uint16", "void_if": {"point": "ch2_valid", "when": False}},
        {"name": "validity", "function": "input", "address": 8, "type": "uint16"},
        {"name": "ch1_valid", "function": "input", "address": 8, "type": "bool", "bit": 0},
        {"name": "ch2_valid", "function": "input", "address": 8, "type": "bool", "bit": 1},
    ]
}


def test_a_validity_bitmap_voids_the_channels_it_marks_invalid():
    def setup(device: SimulatedDevice) -> None:
        device.set_registers(Function.INPUT, 0, [1200, 0])
        device.set_registers(Function.INPUT, 8, [0b01])  # channel 2 not valid: its 0 means nothing

    values = asyncio.run(_one_pass(_profile(AI_WITH_BITMAP), setup))
    assert values["ch1"] == 1200 and values["ch2"] is None
    assert values["validity"] == 1 and values["ch1_valid"] is True and values["ch2_valid"] is False


def test_a_voider_in_another_table_and_interval_is_read_first_in_the_same_visit():
    profile = _profile({
        "points": [
            {"name": "leakage", "function": "input", "address": 6, "type": "uint16", "interval_s": 0.05,
             "void_if": {"point": "ct_break", "when": True}},
            {"name": "ct_break", "function": "discrete", "address": 3, "type": "bool"},
        ]
    })

    async def scenario():
        device = SimulatedDevice(profile, 1)
        device.set_registers(Function.INPUT, 6, [0])
        device.set_registers(Function.DISCRETE, 3, [1])
        queue: asyncio.Queue = asyncio.Queue()
        seen: list = []
        async with polled([device], lambda link: [spec("dev", profile, link, 1)], queue):
            for _ in range(3):  # the ct_break group is due once (ONCE); leakage's every 50 ms
                await wait_for(queue, lambda o: isinstance(o, Reading) and o.point == "leakage", seen)
            device.set_registers(Function.DISCRETE, 3, [0])
            device.set_registers(Function.INPUT, 6, [35])
            await wait_for(queue, lambda o: isinstance(o, Reading) and o.point == "leakage" and o.value == 35, seen)
        leakage = [o.value for o in seen if isinstance(o, Reading) and o.point == "leakage"]
        assert leakage[:3] == [None, None, None] and leakage[-1] == 35

    asyncio.run(scenario())


def test_void_if_must_name_a_point_and_a_label_it_has():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="void_if names 'nope', which is not a point"):
        _profile({"points": [{"name": "a", "function": "input", "address": 0, "type": "uint16", "void_if": {"point": "nope", "when": 1}}]})
    with pytest.raises(ValidationError, match="'broken' is not a label of the point"):
        _profile({"points": [
            {"name": "a", "function": "input", "address": 0, "type": "uint16", "void_if": {"point": "s", "when": "broken"}},
            {"name": "s", "function": "input", "address": 1, "type": "uint16", "enum": {0: "ok"}},
        ]})


# --- fields, types and register numbers as manuals print them (issue 9, item 4) -------------

import struct  # noqa: E402

# A three-phase energy meter's manual, register numbers as printed (modicon: 30001 = input 0):
#   30001      status word: bits 0-1 run mode (0 stopped, 1 running, 2 fault), bit 2 alarm, bits 8-11 comms error count
#   30002      high byte: hardware version, low byte: temperature (signed, degC)
#   30003-06   active energy, uint64, Wh (big-endian words)
#   30007-10   reactive energy, int64, varh, low word first
#   30011-14   frequency, float64
#   30021-28   model name, 16 ASCII characters, NUL padded
METER = {
    "addressing": "modicon",
    "points": [
        {"name": "status", "function": "input", "address": 30001, "type": "uint16"},
        {"name": "run_mode", "function": "input", "address": 30001, "type": "uint16", "bit": 0, "bit_count": 2,
         "enum": {0: "stopped", 1: "running", 2: "fault"}},
        {"name": "alarm", "function": "input", "address": 30001, "type": "bool", "bit": 2},
        {"name": "comm_errors", "function": "input", "address": 30001, "type": "uint16", "bit": 8, "bit_count": 4},
        {"name": "hw_version", "function": "input", "address": 30002, "type": "uint8", "byte": "high"},
        {"name": "board_temp", "function": "input", "address": 30002, "type": "int8", "byte": "low", "unit": "degC"},
        {"name": "energy_wh", "function": "input", "address": 30003, "type": "uint64", "unit": "Wh"},
        {"name": "reactive_varh", "function": "input", "address": 30007, "type": "int64", "word_order": "little"},
        {"name": "frequency", "function": "input", "address": 30011, "type": "float64", "unit": "Hz"},
        {"name": "model_name", "function": "input", "address": 30021, "type": "string", "length": 8},
    ],
}


def test_fields_bytes_views_64_bit_and_strings_as_a_meter_manual_lays_them_out():
    def setup(device: SimulatedDevice) -> None:
        device.set_registers(Function.INPUT, 0, [0b0000_0101_0000_0101, (3 << 8) | (0x100 - 12)])
        device.set_registers(Function.INPUT, 2, list(struct.unpack(">4H", struct.pack(">Q", 12_345_678_901_234))))
        high_first = struct.unpack(">4H", struct.pack(">q", -9_876_543_210))
        device.set_registers(Function.INPUT, 6, list(reversed(high_first)))
        device.set_registers(Function.INPUT, 10, list(struct.unpack(">4H", struct.pack(">d", 49.987654321))))
        device.set_registers(Function.INPUT, 20, list(struct.unpack(">8H", b"EM-340 DIN\x00\x00\x00\x00\x00\x00")))

    values = asyncio.run(_one_pass(_profile(METER), setup))
    assert values["status"] == 0b0000_0101_0000_0101  # the raw word beside its views
    assert values["run_mode"] == 1 and values["alarm"] is True and values["comm_errors"] == 5
    assert values["hw_version"] == 3 and values["board_temp"] == -12
    assert values["energy_wh"] == 12_345_678_901_234
    assert values["reactive_varh"] == -9_876_543_210
    assert values["frequency"] == 49.987654321
    assert values["model_name"] == "EM-340 DIN"


def test_register_numbers_as_manuals_print_them():
    profile = _profile(METER)
    assert profile.point("status").address == 0 and profile.point("model_name").address == 20
    one_based = _profile({"addressing": "one_based", "points": [{"name": "a", "function": "holding", "address": 1, "type": "uint16"}],
                          "commands": [{"name": "go", "function": "holding", "address": 10, "values": [1]}]})
    assert one_based.point("a").address == 0 and one_based.command("go").address == 9
    six_digit = _profile({"addressing": "modicon", "points": [{"name": "a", "function": "holding", "address": 400101, "type": "uint16"}]})
    assert six_digit.point("a").address == 100


def test_bad_fields_are_refused_at_their_point():
    import pytest
    from pydantic import ValidationError

    def error(point: dict, **profile) -> tuple[tuple, str]:
        with pytest.raises(ValidationError) as caught:
            _profile({"points": [point], **profile})
        first = caught.value.errors()[0]
        return first["loc"], first["msg"]

    loc, message = error({"name": "a", "function": "holding", "address": 30001, "type": "uint16"}, addressing="modicon")
    assert loc == ("points", 0) and "30001 is not a holding register number" in message
    assert "bit_count makes a field of a uint16" in error({"name": "a", "function": "input", "address": 0, "type": "int16", "bit": 1, "bit_count": 2})[1]
    assert "run past bit 15" in error({"name": "a", "function": "input", "address": 0, "type": "uint16", "bit": 12, "bit_count": 6})[1]
    assert "need byte: high or low" in error({"name": "a", "function": "input", "address": 0, "type": "uint8"})[1]
    assert "a string needs length" in error({"name": "a", "function": "input", "address": 0, "type": "string"})[1]
    with pytest.raises(ValidationError, match="input address 0 is claimed by a, b"):
        _profile({"points": [
            {"name": "a", "function": "input", "address": 0, "type": "uint16", "bit": 0, "bit_count": 3},
            {"name": "b", "function": "input", "address": 0, "type": "bool", "bit": 2},
        ]})


# --- a variant picked by the firmware register (issue 9, item 4) ----------------------------

from edge.drivers.modbus.observations import DeviceIdentified  # noqa: E402

# A residual-current relay whose manual says: firmware (30257, 0x0105 = 1.05) before 2.00 keeps
# the leakage at 30007; from 2.00 the leakage is a float at 30101-30102 and the alarm limit moved.
RELAY = {
    "addressing": "modicon",
    "interval_s": ONCE,
    "points": [
        {"name": "leakage_ma", "function": "input", "address": 30007, "type": "uint16", "unit": "mA"},
        {"name": "limit_ma", "function": "holding", "address": 40001, "type": "uint16", "unit": "mA"},
    ],
    "identify": {"name": "firmware", "function": "input", "address": 30257, "type": "uint16"},
    "variants": [
        {"name": "fw2", "at_least": 0x0200, "points": [
            {"name": "leakage_ma", "function": "input", "address": 30101, "type": "float32", "unit": "mA"},
            {"name": "limit_ma", "function": "holding", "address": 40011, "type": "uint16", "unit": "mA"},
        ]},
    ],
}


def test_a_firmware_register_picks_the_profile_variant_each_device_is_polled_by():
    profile = _profile(RELAY)

    async def scenario():
        old, new = SimulatedDevice(profile, 1), SimulatedDevice(profile, 2)
        for device, firmware in ((old, 0x0105), (new, 0x0201)):
            device.set_registers(Function.INPUT, 256, [firmware])
            device.set_registers(Function.INPUT, 6, [31])  # what the old map holds at 30007
            device.set_registers(Function.INPUT, 100, list(struct.unpack(">2H", struct.pack(">f", 27.5))))
            device.set_registers(Function.HOLDING, 0, [300])
            device.set_registers(Function.HOLDING, 10, [100])
        queue: asyncio.Queue = asyncio.Queue()
        seen: list = []
        async with polled([old, new], lambda link: [spec("old", profile, link, 1), spec("new", profile, link, 2)], queue):
            while len({(o.device, o.point) for o in seen if isinstance(o, Reading)}) < 4:
                await wait_for(queue, lambda o: True, seen)
        identified = {o.device: o for o in seen if isinstance(o, DeviceIdentified)}
        assert identified["old"] == DeviceIdentified("old", 0x0105, None)
        assert identified["new"] == DeviceIdentified("new", 0x0201, "fw2")
        values = {(o.device, o.point): o.value for o in seen if isinstance(o, Reading)}
        assert values == {("old", "leakage_ma"): 31, ("old", "limit_ma"): 300, ("new", "leakage_ma"): 27.5, ("new", "limit_ma"): 100}

    asyncio.run(scenario())


def test_a_variant_that_breaks_the_map_is_refused_naming_it():
    import pytest
    from pydantic import ValidationError

    broken = {**RELAY, "variants": [{"name": "fw3", "when": [0x0300], "points": [
        {"name": "extra", "function": "input", "address": 30007, "type": "uint16"}]}]}
    with pytest.raises(ValidationError, match="variant 'fw3': input address 6 is claimed by leakage_ma, extra"):
        _profile(broken)
    with pytest.raises(ValidationError, match="variants need an 'identify' register"):
        _profile({**RELAY, "identify": None})
