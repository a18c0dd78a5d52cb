"""Enums on any numeric type, read-backs that compare with the argument or a label, result registers
that settle, preconditions that honour void_if (issue 21, item 4), against pymodbus servers."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pydantic import ValidationError

from edge.drivers.modbus.poller import Poller
from edge.drivers.modbus.wire import TcpLink
from edge.drivers.modbus.profile import Profile
from edge.drivers.modbus.tables import Function
from edge.hil.modbus_sim import SimulatedDevice

from field_rig import BUILT_IN, WireSimulator
from modbus_rig import ONCE, Running, spec

SDM630 = BUILT_IN["generic-meter3p"]
BAUD = 0x001C  # holding 40029


def _float_words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


async def _meter(line) -> dict:
    meter = SimulatedDevice(SDM630.model_copy(update={"interval_s": ONCE}), 1)
    meter.set_value("baud_rate", 2.0)  # b9600
    meter.set_value("voltage_l1", 231.5)
    simulator = WireSimulator([meter])
    link = await line.start(simulator)
    poller = Poller([spec("meter", SDM630, link, 1, timeout_s=1.0)], asyncio.Queue())
    try:
        async with Running(poller):
            before = await poller.read_now("meter", ["baud_rate", "voltage_l1"])
            half = await poller.write_command("meter", "set_baud_rate", 2.5)
            by_label = await poller.write_command("meter", "set_baud_rate", "b19200")
            by_code = await poller.write_command("meter", "set_baud_rate", 4.0)
            after = await poller.read_now("meter", ["baud_rate"])
    finally:
        await simulator.stop()
    return {"before": before, "half": half, "label": by_label, "code": by_code, "after": after, "writes": simulator.writes(1)}


def _judge(found: dict) -> None:
    assert found["before"]["baud_rate"] == (2.0, None) and SDM630.point("baud_rate").enum[found["before"]["baud_rate"][0]] == "b9600"
    assert found["before"]["voltage_l1"] == (231.5, None)
    half = found["half"]
    assert not half and not half.sent and "2.5 is not one of its codes: 0 (b2400), 1 (b4800), 2 (b9600)" in half.reason
    assert found["label"] and found["label"].reason == "confirmed", "read back as the argument it was given"
    assert found["code"] and found["after"]["baud_rate"] == (4.0, None)
    assert found["writes"] == [struct.pack(">BHHB", 16, BAUD, 2, 4) + struct.pack(">f", 3.0),
                               struct.pack(">BHHB", 16, BAUD, 2, 4) + struct.pack(">f", 4.0)], "2.5 never reached the meter"


def test_a_float_coded_setup_register_has_labels_and_its_argument_takes_only_its_codes(modbus_line):
    """Over Modbus TCP and over an RTU line."""
    _judge(asyncio.run(_meter(modbus_line)))


class Deaf(SimulatedDevice):
    """Acknowledges a setup write and keeps its old value, as a meter does while its setup is locked."""

    def write(self, function, address, values):
        return None


def test_a_read_back_of_the_argument_that_does_not_match_is_not_confirmed():
    async def scenario():
        meter = Deaf(SDM630, 1)
        meter.set_value("node_address", 1.0)
        simulator = WireSimulator([meter])
        port = await simulator.start_tcp()
        fast = SDM630.model_copy(update={"commands": [c.model_copy(update={"readback": c.readback.model_copy(update={"within_s": 0.3})})
                                                      for c in SDM630.commands]})
        poller = Poller([spec("meter", fast, TcpLink("127.0.0.1", port), 1)], asyncio.Queue())
        try:
            async with Running(poller):
                return await poller.write_command("meter", "set_node_address", 17)
        finally:
            await simulator.stop()

    outcome = asyncio.run(scenario())
    assert not outcome and outcome.sent and outcome.reason == "not confirmed within 0.3 s: node_address reads 1.0"


# A relay output module whose state register names its states, whose command result settles after
# the write, and whose remote/local bit is only valid while the module says its status word is valid.
VALVE = {
    "model": "valve",
    "interval_s": ONCE,
    "points": [
        {"name": "state", "function": "input", "address": 0, "type": "uint16", "enum": {0: "closed", 1: "open", 2: "moving"}},
        {"name": "result", "function": "input", "address": 1, "type": "uint16",
         "enum": {0: "idle", 1: "busy", 2: "done", 3: "refused_interlock"}},
        {"name": "status_valid", "function": "input", "address": 2, "type": "bool", "bit": 0},
        {"name": "remote", "function": "input", "address": 2, "type": "bool", "bit": 1,
         "void_if": {"point": "status_valid", "when": False}},
    ],
    "commands": [
        {"name": "open", "function": "holding", "function_code": 6, "address": 0, "values": [1],
         "readback": {"point": "state", "expect": "open"}},
        {"name": "close", "function": "holding", "function_code": 6, "address": 0, "values": [2],
         "result": {"point": "result", "ok": ["done"], "pending": ["busy"], "settle_s": 0.5},
         "preconditions": [{"point": "remote", "when": True, "refuse": "valve in local mode"}]},
    ],
}


class Valve(SimulatedDevice):
    """Opens when told (state reads `open`); a close shows the last command's 'done' for a moment, then
    refuses it by its interlock."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile, 1)
        self.closed_at: float | None = None

    def write(self, function, address, values):
        if values == [1]:
            self.set_value("state", 1)
        if values == [2]:
            self.closed_at = self._clock()
        return super().write(function, address, values)

    def read(self, function, address, count):
        if self.closed_at is not None and self._clock() - self.closed_at > 0.1:
            self.set_registers(Function.INPUT, 1, [3])
        return super().read(function, address, count)


def test_a_label_read_back_a_settling_result_and_a_voided_precondition():
    async def scenario():
        profile = Profile.model_validate(VALVE)
        valve = Valve(profile)
        valve.set_registers(Function.INPUT, 1, [2])  # the last command's result: done
        valve.set_registers(Function.INPUT, 2, [0b10])  # remote, but the status word is not valid
        simulator = WireSimulator([valve])
        port = await simulator.start_tcp()
        poller = Poller([spec("valve", profile, TcpLink("127.0.0.1", port), 1)], asyncio.Queue())
        try:
            async with Running(poller):
                opened = await poller.write_command("valve", "open")
                voided = await poller.write_command("valve", "close")
                valve.set_registers(Function.INPUT, 2, [0b11])  # status valid, remote
                refused = await poller.write_command("valve", "close")
        finally:
            await simulator.stop()
        return opened, voided, refused, simulator.writes(1)

    opened, voided, refused, writes = asyncio.run(scenario())
    assert opened and opened.reason == "confirmed"
    assert not voided and not voided.sent and voided.reason == "refused: cannot read remote (voided by status_valid)"
    assert not refused and refused.sent and refused.reason == "refused by the device: refused_interlock", \
        "the old 'done' is not taken for this command's result"
    assert writes == [bytes.fromhex("0600000001"), bytes.fromhex("0600000002")], "the voided close sent nothing"


def test_enum_and_read_back_fields_are_checked_at_load():
    with pytest.raises(ValidationError, match="enum names numeric codes; a string has none"):
        Profile.model_validate({"model": "m", "points": [{"name": "p", "function": "input", "address": 0, "type": "string",
                                                          "length": 2, "enum": {1: "a"}}]})
    with pytest.raises(ValidationError, match="'ajar' is not a label of the point"):
        Profile.model_validate({**VALVE, "commands": [{**VALVE["commands"][0], "readback": {"point": "state", "expect": "ajar"}}]})
    with pytest.raises(ValidationError, match="expect: argument needs a command with an argument"):
        Profile.model_validate({**VALVE, "commands": [{**VALVE["commands"][0], "readback": {"point": "state", "expect": "argument"}}]})
    with pytest.raises(ValidationError, match="every enum code must lie within min..max"):
        Profile.model_validate({**VALVE, "commands": [{"name": "c", "function": "holding", "address": 5,
                                                       "argument": {"type": "float32", "min": 0, "max": 2, "enum": {3: "x"}}}]})
    meter = Profile.model_validate({"model": "m", "points": [{"name": "code", "function": "holding", "address": 0,
                                                              "type": "float32", "enum": {2.5: "half", 3: "three"}}]})
    assert meter.point("code").enum == {2.5: "half", 3: "three"}
