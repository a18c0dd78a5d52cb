"""What real device maps say, decoded by the poller from registers laid out as a manual prints
them (issue 9, items 2 and 4). The simulator's raw tables are set word by word here, so the
test does not lean on the decoding it checks."""

from __future__ import annotations

import asyncio

from drivers.modbus.observations import Reading
from drivers.modbus.poller import Poller
from drivers.modbus.profile import Function, Profile
from hil.modbus_sim import SimulatedDevice

from test_modbus_poller import ONCE, Running, spec, tcp_rig, wait_for


def _profile(document: dict) -> Profile:
    return Profile.model_validate({"model": "t", "interval_s": ONCE, **document})


async def _one_pass(profile: Profile, setup) -> dict[str, object]:
    """Poll a device once; the value of every point reported."""
    device = SimulatedDevice(profile, 1)
    setup(device)
    simulator, link = await tcp_rig(device)
    queue: asyncio.Queue = asyncio.Queue()
    seen: list = []
    try:
        async with Running(Poller([spec("dev", profile, link, 1)], queue)):
            while len({o.point for o in seen if isinstance(o, Reading)}) < len(profile.points):
                await wait_for(queue, lambda o: True, seen)
    finally:
        await simulator.stop()
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
        simulator, link = await tcp_rig(device)
        queue: asyncio.Queue = asyncio.Queue()
        seen: list = []
        try:
            async with Running(Poller([spec("dev", profile, link, 1)], queue)):
                for _ in range(3):  # the ct_break group is due once (ONCE); leakage's every 50 ms
                    await wait_for(queue, lambda o: isinstance(o, Reading) and o.point == "leakage", seen)
                device.set_registers(Function.DISCRETE, 3, [0])
                device.set_registers(Function.INPUT, 6, [35])
                await wait_for(queue, lambda o: isinstance(o, Reading) and o.point == "leakage" and o.value == 35, seen)
        finally:
            await simulator.stop()
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
