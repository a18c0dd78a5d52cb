"""Commands on a shared wire, against pymodbus servers: they go ahead of polls (issue 9, item 6)."""

from __future__ import annotations

import asyncio

from edge.drivers.modbus.observations import Reading
from edge.hil.modbus_sim import Fault, FaultPlan, FieldSimulator, SimulatedDevice
from edge.hil.waiting import until

from modbus_rig import ONCE, WAIT_S, FlashingRelayModule, polled, profile, spec, wait_for

FC_WRITE_COIL = 5


def test_an_unlock_overtakes_a_queued_poll():
    async def scenario():
        busy = SimulatedDevice(profile("generic-dio8", interval_s=ONCE), 1)
        door = SimulatedDevice(profile("generic-dio8", interval_s=0.02), 2)
        queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        simulator = FieldSimulator([busy, door])
        async with polled(simulator, lambda link: [spec("busy", busy.profile, link, 1, timeout_s=3.0), spec("door", door.profile, link, 2, timeout_s=3.0)], queue) as poller:
            await wait_for(queue, lambda o: isinstance(o, Reading) and o.device == "door")
            drain = asyncio.create_task(_drain(queue))
            busy.fault = FaultPlan(Fault.SLOW, delay_s=0.5)  # its next answer holds the wire
            holding = asyncio.create_task(poller.write_command("busy", "release_1"))
            await until(lambda: poller.queued("door") == 1, WAIT_S, "the door's next poll queueing behind the slow write", every_s=0.005)
            unlock = asyncio.create_task(poller.write_command("door", "release_1"))
            await until(lambda: poller.queued("door") == 2, WAIT_S, "the unlock queueing", every_s=0.005)
            assert await asyncio.wait_for(unlock, WAIT_S)
            holding.cancel()
            drain.cancel()
            await asyncio.gather(holding, drain, return_exceptions=True)
        log = list(simulator.requests)
        slow_write = log.index((1, FC_WRITE_COIL))
        assert log[slow_write + 1] == (2, FC_WRITE_COIL), f"after the slow write the wire went to {log[slow_write + 1]}"

    asyncio.run(scenario())


async def _drain(queue: asyncio.Queue) -> None:
    while True:
        await queue.get()


def test_a_waiter_cancelled_in_the_lane_neither_blocks_nor_loses_the_wire():
    from edge.drivers.modbus.lane import WireLane, Priority

    async def scenario():
        lane = WireLane()
        order: list[str] = []
        await lane.acquire(Priority.POLL)

        async def take(name: str, priority: Priority) -> None:
            await lane.acquire(priority)
            order.append(name)
            lane.release()

        poll = asyncio.create_task(take("poll", Priority.POLL))
        gone = asyncio.create_task(take("gone", Priority.COMMAND))
        command = asyncio.create_task(take("command", Priority.COMMAND))
        await until(lambda: lane.waiting == 3, WAIT_S, "three waiters", every_s=0.005)
        gone.cancel()
        lane.release()
        await asyncio.wait_for(asyncio.gather(poll, command), WAIT_S)
        assert order == ["command", "poll"] and gone.cancelled()
        await asyncio.wait_for(lane.acquire(Priority.POLL), WAIT_S)  # free again

    asyncio.run(scenario())


# --- writes as real devices take them (issue 9, item 3) -------------------------------------

import struct  # noqa: E402

from edge.drivers.modbus.profile import Profile  # noqa: E402
from edge.drivers.modbus.tables import Function  # noqa: E402

FC_READ_HOLDING, FC_WRITE_REGISTER, FC_WRITE_REGISTERS = 3, 6, 16

# A drive-style controller whose manual lists setpoints at 40101.. (FC06 only) and a float
# setpoint at 40201-40202 (FC16, low word first).
CONTROLLER = Profile.model_validate({
    "model": "controller",
    "interval_s": ONCE,
    "points": [
        {"name": "setpoint", "function": "holding", "address": 100, "type": "uint16", "scale": 0.1, "unit": "bar"},
        {"name": "flow", "function": "holding", "address": 200, "type": "float32", "word_order": "little", "unit": "m3/h"},
    ],
    "commands": [
        {"name": "set_pressure", "function": "holding", "function_code": 6, "address": 100,
         "argument": {"type": "uint16", "scale": 0.1, "min": 0, "max": 16, "unit": "bar"},
         "readback": {"point": "setpoint", "expect": 4.5}},
        {"name": "set_pressure_fc16", "function": "holding", "address": 100, "values": [45]},
        {"name": "set_flow", "function": "holding", "address": 200,
         "argument": {"type": "float32", "min": 0, "max": 100, "unit": "m3/h", "word_order": "little"}},
    ],
})


def test_an_fc06_only_device_takes_a_typed_value_written_with_fc06():
    async def scenario():
        device = SimulatedDevice(CONTROLLER, 1)
        device.functions = frozenset({FC_READ_HOLDING, FC_WRITE_REGISTER})  # answers FC16 with ILLEGAL_FUNCTION
        simulator = FieldSimulator([device])
        async with polled(simulator, lambda link: [spec("ctl", CONTROLLER, link, 1)], asyncio.Queue()) as poller:
            done = await poller.write_command("ctl", "set_pressure", 4.5)
            block = await poller.write_command("ctl", "set_pressure_fc16")
            out_of_range = await poller.write_command("ctl", "set_pressure", 17.0)
            missing = await poller.write_command("ctl", "set_pressure")
        assert done.confirmed and done.reason == "confirmed"
        assert device.read(Function.HOLDING, 100, 1) == [45]
        assert (1, FC_WRITE_REGISTER) in simulator.requests
        assert not block.confirmed and block.reason == "device answered exception 1"
        assert not out_of_range and out_of_range.reason == "refused: 17 is outside 0..16 bar"
        assert not missing and missing.reason == "refused: command set_pressure needs a value (0..16 bar)"

    asyncio.run(scenario())


def test_a_float_given_at_run_time_is_written_as_two_registers_in_the_devices_word_order():
    async def scenario():
        device = SimulatedDevice(CONTROLLER, 1)
        simulator = FieldSimulator([device])
        async with polled(simulator, lambda link: [spec("ctl", CONTROLLER, link, 1)], asyncio.Queue()) as poller:
            done = await poller.write_command("ctl", "set_flow", 12.75)
        assert done.confirmed
        high, low = struct.unpack(">HH", struct.pack(">f", 12.75))
        assert device.read(Function.HOLDING, 200, 2) == [low, high]  # CDAB: the low word first
        assert (1, FC_WRITE_REGISTERS) in simulator.requests

    asyncio.run(scenario())


def test_a_device_timed_pulse_is_one_fc05_word_and_the_module_ends_it():
    async def scenario():
        dio = profile("generic-dio8", interval_s=0.02)
        module = FlashingRelayModule(dio, 1)
        queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        seen: list = []
        simulator = FieldSimulator([module])
        async with polled(simulator, lambda link: [spec("io", dio, link, 1)], queue) as poller:
            done = await poller.write_command("io", "pulse_2", 0.3)
            await wait_for(queue, lambda o: isinstance(o, Reading) and o.point == "relay_2" and o.value is True, seen)
            await wait_for(queue, lambda o: isinstance(o, Reading) and o.point == "relay_2" and o.value is False, seen)
        assert done.confirmed
        assert [r for r in simulator.requests if r[1] in (5, 15)] == [(1, 5)], "one write; the module ended the pulse"
        assert not module.flashes

    asyncio.run(scenario())


def test_a_pulse_word_reaches_the_module_as_the_manual_gives_it():
    dio = profile("generic-dio8", interval_s=ONCE)
    words: list[tuple[int, int]] = []

    class Recording(SimulatedDevice):
        def write(self, function, address, values):
            words.append((address, values[0]))
            return super().write(function, address, values)

    async def scenario():
        async with polled([Recording(dio, 1)], lambda link: [spec("io", dio, link, 1)], asyncio.Queue()) as poller:
            assert await poller.write_command("io", "pulse_1", 0.7)
            assert await poller.write_command("io", "release_1")
        assert words == [(0x0200, 7), (0, 1)]  # 7 x 100 ms; the plain coil as the standard ON

    asyncio.run(scenario())


# A moulded-case breaker's communication module: a command word at 40001 and a result code at
# 30011 (0 idle, 1 busy, 2 done, 3 refused: interlock, 4 refused: local mode).
MCCB = Profile.model_validate({
    "model": "mccb",
    "interval_s": ONCE,
    "points": [
        {"name": "result", "function": "input", "address": 10, "type": "uint16",
         "enum": {0: "idle", 1: "busy", 2: "done", 3: "refused_interlock", 4: "refused_local_mode"}},
    ],
    "commands": [
        {"name": "trip", "function": "holding", "function_code": 6, "address": 0, "values": [0x0101],
         "result": {"point": "result", "ok": ["done"], "pending": ["busy", "idle"]}},
    ],
})


class InterlockedBreaker(SimulatedDevice):
    """Answers a trip with 'busy', then with the code its interlock gives."""

    def __init__(self, profile: Profile, unit_id: int, code: int) -> None:
        super().__init__(profile, unit_id)
        self.code = code
        self.polls_until_result = 0

    def write(self, function, address, values):
        self.set_registers(Function.INPUT, 10, [1])
        self.polls_until_result = 2
        return super().write(function, address, values)

    def read(self, function, address, count):
        if function is Function.INPUT and self.polls_until_result:
            self.polls_until_result -= 1
            if not self.polls_until_result:
                self.set_registers(Function.INPUT, 10, [self.code])
        return super().read(function, address, count)


def test_a_result_register_says_why_the_device_refused():
    async def scenario():
        refusing, willing = InterlockedBreaker(MCCB, 1, 3), InterlockedBreaker(MCCB, 2, 2)
        async with polled([refusing, willing], lambda link: [spec("a", MCCB, link, 1), spec("b", MCCB, link, 2)], asyncio.Queue()) as poller:
            refused = await poller.write_command("a", "trip")
            done = await poller.write_command("b", "trip")
        assert not refused and refused.reason == "refused by the device: refused_interlock"
        assert done and done.reason == "done"

    asyncio.run(scenario())


def test_command_fields_are_checked():
    import pytest
    from pydantic import ValidationError

    def command(**fields):
        return Profile.model_validate({"model": "t", "points": [{"name": "p", "function": "input", "address": 0, "type": "uint16"}],
                                       "commands": [{"name": "c", "address": 0, **fields}]})

    with pytest.raises(ValidationError, match="function code 6 does not write coils"):
        command(function="coil", function_code=6, values=[1])
    with pytest.raises(ValidationError, match="function code 6 writes exactly one holding"):
        command(function="holding", function_code=6, values=[1, 2])
    with pytest.raises(ValidationError, match="give exactly one of 'values'"):
        command(function="holding")
    with pytest.raises(ValidationError, match="an argument written to a coil needs function_code: 5"):
        command(function="coil", argument={"type": "uint16", "min": 0, "max": 1})
    with pytest.raises(ValidationError, match="precondition point 'q' is not a point"):
        command(function="coil", values=[1], preconditions=[{"point": "q", "when": 1, "refuse": "no"}])
    assert command(function="coil", raw_word=0x5500).commands[0].code == 5
