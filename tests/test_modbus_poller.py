"""The poller against the simulator: real pymodbus servers on loopback TCP and on socat ptys."""

from __future__ import annotations

import asyncio

import pytest

from edge.drivers.modbus.observations import DeviceBack, DeviceOffline, FaultKind, Observation, PollFault, Reading
from edge.drivers.modbus.poller import Poller
from edge.drivers.modbus.wire import SerialLink
from edge.drivers.modbus.tables import Function
from edge.hil.modbus_sim import Fault, FaultPlan, FieldSimulator, Ramp, SimulatedDevice, wire_break
from edge.hil.pty import pty_pair
from edge.hil.waiting import until

from modbus_rig import ONCE, WAIT_S, Running, faulty, polled, profile, reading_of, spec, tcp_rig, wait_for


def test_readings_in_engineering_units_in_two_requests():
    async def scenario():
        efm = profile("generic-efm8", interval_s=ONCE)
        device = SimulatedDevice(efm, 2)
        device.set_value("current_a", 10.25)
        device.set_value("leakage_ma", 320)
        device.set_value("cable_temp_3", 61.5)
        device.set_value("temperature_alarm", True)
        device.set_value("trip_state", True)
        queue: asyncio.Queue = asyncio.Queue()
        async with polled([device], lambda link: [spec("efm", efm, link, 2)], queue) as poller:
            seen: list[Observation] = []
            while len({o.point for o in seen if isinstance(o, Reading)}) < len(efm.points):
                await wait_for(queue, lambda o: True, seen)
        values = {o.point: o.value for o in seen if isinstance(o, Reading)}
        assert values["current_a"] == 10.25  # float32 in CDAB order
        assert values["leakage_ma"] == 320
        assert values["cable_temp_3"] == pytest.approx(61.5)
        assert values["temperature_alarm"] is True and values["leakage_alarm"] is False
        assert values["trip_state"] is True
        assert all(o.unit == efm.point(o.point).unit for o in seen if isinstance(o, Reading))
        # Input registers 0..17 in one request (gap 12..15 read across), the discrete input in another.
        assert poller.counters["efm"].requests == 2

    asyncio.run(scenario())


def test_each_point_keeps_its_own_interval():
    async def scenario():
        pt = profile("generic-pt485", interval_s=0.05)  # pressure_kpa keeps its own 10 s
        device = SimulatedDevice(pt, 1)
        device.set_value("pressure", 0.5)
        device.set_value("pressure_kpa", 500.0)
        queue: asyncio.Queue = asyncio.Queue()
        seen: list[Observation] = []
        async with polled([device], lambda link: [spec("riser", pt, link, 1)], queue):
            for _ in range(5):
                await wait_for(queue, reading_of("riser", "pressure"), seen)
        kpa = [o for o in seen if isinstance(o, Reading) and o.point == "pressure_kpa"]
        assert len(kpa) == 1 and kpa[0].value == pytest.approx(500.0)

    asyncio.run(scenario())


def test_silent_device_goes_offline_is_probed_and_comes_back():
    async def scenario():
        brk = profile("generic-breaker", interval_s=0.05)
        device = SimulatedDevice(brk, 1)
        device.set_value("current", 4.0)
        queue: asyncio.Queue = asyncio.Queue()
        async with polled([device], lambda link: [spec("brk", brk, link, 1)], queue) as poller:
            await wait_for(queue, reading_of("brk", "current"))
            device.fault = FaultPlan(Fault.SILENT)
            seen: list[Observation] = []
            offline = await wait_for(queue, lambda o: isinstance(o, DeviceOffline), seen)
            assert offline == DeviceOffline("brk", FaultKind.TIMEOUT)
            assert not poller.is_online("brk")
            timeouts = poller.counters["brk"].timeouts
            await until(lambda: poller.counters["brk"].timeouts >= timeouts + 2, WAIT_S, "two more probes failing")
            device.fault = None
            device.set_value("current", 5.5)
            await wait_for(queue, lambda o: isinstance(o, DeviceBack), seen)
            back = await wait_for(queue, reading_of("brk", "current"), seen)
        assert back.value == 5.5
        assert poller.is_online("brk")
        faults = [o for o in seen if isinstance(o, PollFault)]
        assert len(faults) == 2 and {f.kind for f in faults} == {FaultKind.TIMEOUT}  # offline_after=2; probes are quiet
        assert not [o for o in seen[: seen.index(offline)] if isinstance(o, Reading) and o.point == "current"]

    asyncio.run(scenario())


def test_one_dead_device_does_not_stop_another_on_its_own_link():
    async def scenario():
        lvl = profile("generic-level", interval_s=0.05)
        dead_sim, dead_link = await tcp_rig(SimulatedDevice(lvl, 1))
        live_device = SimulatedDevice(lvl, 1)
        live_sim, live_link = await tcp_rig(live_device)
        dead_sim.device(1).fault = FaultPlan(Fault.SILENT)
        queue: asyncio.Queue = asyncio.Queue()
        poller = Poller([spec("dead", lvl, dead_link, 1), spec("live", lvl, live_link, 1)], queue)
        try:
            async with Running(poller):
                await wait_for(queue, lambda o: isinstance(o, DeviceOffline) and o.device == "dead")
                live_device.play("level", Ramp(start=1.0, per_s=0.5))
                values = [(await wait_for(queue, reading_of("live", "level"))).value for _ in range(5)]
        finally:
            await dead_sim.stop()
            await live_sim.stop()
        assert values == sorted(values) and values[0] >= 1.0

    asyncio.run(scenario())


def test_exception_responses_are_counted_and_keep_the_device_online():
    async def scenario():
        pt, device = faulty("generic-pt485", 7, FaultPlan(Fault.EXCEPTION, exception_code=2), interval_s=0.05)
        queue: asyncio.Queue = asyncio.Queue()
        async with polled([device], lambda link: [spec("riser", pt, link, 7)], queue) as poller:
            seen: list[Observation] = []
            await wait_for(queue, lambda o: isinstance(o, PollFault), seen)
            await until(lambda: poller.counters["riser"].exceptions >= 4, WAIT_S, "four exception answers counted")
            device.fault = None
            device.set_value("pressure", 0.62)
            reading = await wait_for(queue, reading_of("riser", "pressure"), seen)
        assert reading.value == pytest.approx(0.62)
        faults = [o for o in seen if isinstance(o, PollFault)]
        assert all(f.kind is FaultKind.EXCEPTION and "code 2" in f.detail for f in faults)
        assert not [o for o in seen if isinstance(o, DeviceOffline)]
        assert poller.counters["riser"].exceptions >= 4
        assert poller.counters["riser"].timeouts == 0

    asyncio.run(scenario())


def test_slow_answer_past_the_timeout_counts_as_timeout():
    async def scenario():
        lvl, device = faulty("generic-level", 1, FaultPlan(Fault.SLOW, delay_s=1.0), interval_s=0.05)
        queue: asyncio.Queue = asyncio.Queue()
        async with polled([device], lambda link: [spec("tank", lvl, link, 1, timeout_s=0.2, retries=1, offline_after=5)], queue) as poller:
            fault = await wait_for(queue, lambda o: isinstance(o, PollFault))
        assert fault.kind is FaultKind.TIMEOUT
        assert poller.counters["tank"].timeouts >= 2  # the try and its retry

    asyncio.run(scenario())


def test_cut_frames_count_as_short_frames_on_tcp():
    async def scenario():
        lvl, device = faulty("generic-level", 1, FaultPlan(Fault.SHORT), interval_s=0.05)
        queue: asyncio.Queue = asyncio.Queue()
        async with polled([device], lambda link: [spec("tank", lvl, link, 1)], queue) as poller:
            fault = await wait_for(queue, lambda o: isinstance(o, PollFault))
            device.fault = None
            await wait_for(queue, reading_of("tank", "level"))  # the rebuilt client reads again
        assert fault.kind is FaultKind.SHORT_FRAME
        assert poller.counters["tank"].short_frames >= 1

    asyncio.run(scenario())


def test_undecodable_values_are_faults_not_readings():
    async def scenario():
        ai = profile("generic-ai8", interval_s=0.05)
        device = SimulatedDevice(ai, 3)
        for channel in range(1, 9):
            device.set_value(f"ch{channel}_ma", 4.0)
        device.set_value("ch1_ma", 12.0)
        device.play("ch2_ma", wire_break())  # 0 mA is a real reading: the safety rules call it a sensor fault
        device.set_registers(Function.INPUT, 4, [0x7FC0, 0x0000])  # ch3: NaN
        device.set_registers(Function.INPUT, 6, [0x4220, 0x0000])  # ch4: 40 mA, past valid_max
        queue: asyncio.Queue = asyncio.Queue()
        seen: list[Observation] = []
        async with polled([device], lambda link: [spec("ai", ai, link, 3)], queue) as poller:
            for _ in range(3):
                await wait_for(queue, reading_of("ai", "ch8_ma"), seen)
        readings = {o.point: o.value for o in seen if isinstance(o, Reading)}
        faults = {o.detail.split(":")[0] for o in seen if isinstance(o, PollFault) and o.kind is FaultKind.DECODE}
        assert readings["ch1_ma"] == 12.0 and readings["ch2_ma"] == 0.0
        assert "ch3_ma" not in readings and "ch4_ma" not in readings
        assert {"ch3_ma", "ch4_ma"} <= faults
        assert poller.counters["ai"].decode_errors >= 2
        assert len([o for o in seen if isinstance(o, PollFault)]) == 2  # reported once each, counted every poll

    asyncio.run(scenario())


def test_write_with_read_back_confirmed_and_unconfirmed():
    async def scenario():
        brk = profile("generic-breaker", interval_s=ONCE)
        device = SimulatedDevice(brk, 1)
        device.set_value("closed", True)
        queue: asyncio.Queue = asyncio.Queue()
        async with polled([device], lambda link: [spec("brk", brk, link, 1)], queue) as poller:
            assert (await poller.write_command("brk", "trip")).confirmed is True
            assert device.value_of("closed") is False
            device.follow_commands = False  # the motor operator is jammed
            unconfirmed = await poller.write_command("brk", "close")
            device.fault = FaultPlan(Fault.EXCEPTION, exception_code=4)
            refused = await poller.write_command("brk", "close")
        assert unconfirmed.confirmed is False and refused.confirmed is False
        assert unconfirmed.reason == "not confirmed within 5 s: closed reads False"
        assert refused.reason == "refused: cannot read local_mode (the device answered with an exception)"
        assert device.value_of("closed") is False
        assert poller.counters["brk"].exceptions == 1

    asyncio.run(scenario())


def test_register_block_command_and_coil_block_command():
    async def scenario():
        efm = profile("generic-efm8", interval_s=ONCE)
        dio = profile("generic-dio8", interval_s=ONCE)
        fire = SimulatedDevice(efm, 1)
        fire.set_value("trip_state", True)
        doors = SimulatedDevice(dio, 2)
        async with polled([fire, doors], lambda link: [spec("efm", efm, link, 1), spec("doors", dio, link, 2)], asyncio.Queue()) as poller:
            reset = await poller.write_command("efm", "reset")
            released = await poller.write_command("doors", "release_all")
        assert reset.confirmed is True and fire.value_of("trip_state") is False
        assert released.confirmed is True and all(doors.value_of(f"relay_{i}") for i in range(1, 9))

    asyncio.run(scenario())


# --- RS-485: Modbus RTU over a socat pty pair ---------------------------------------------


def test_rtu_line_with_two_devices_and_a_corrupted_crc():
    async def scenario(line_end: str, device_end: str):
        brk = profile("generic-breaker", interval_s=0.05)
        lvl = profile("generic-level", interval_s=0.05)
        breaker, tank = SimulatedDevice(brk, 1), SimulatedDevice(lvl, 2)
        breaker.set_value("current", 2.5)
        tank.set_value("level", 3.25)
        simulator = FieldSimulator([breaker, tank])
        await simulator.start_rtu(device_end, baudrate=19200)
        link = SerialLink(line_end, baudrate=19200)
        queue: asyncio.Queue = asyncio.Queue()
        poller = Poller([spec("brk", brk, link, 1, offline_after=3), spec("tank", lvl, link, 2, offline_after=3)], queue)
        try:
            async with Running(poller):
                current = await wait_for(queue, reading_of("brk", "current"))
                level = await wait_for(queue, reading_of("tank", "level"))
                breaker.fault = FaultPlan(Fault.CRC)
                crc = await wait_for(queue, lambda o: isinstance(o, PollFault) and o.device == "brk")
                breaker.fault = FaultPlan(Fault.SHORT)
                short = await wait_for(queue, lambda o: isinstance(o, PollFault) and o.kind is FaultKind.SHORT_FRAME)
                breaker.fault = None
                tank.set_value("level", 4.5)
                await wait_for(queue, lambda o: reading_of("tank", "level")(o) and o.value == 4.5)
                confirmed = await poller.write_command("brk", "close")
        finally:
            await simulator.stop()
        assert current.value == 2.5 and level.value == pytest.approx(3.25)
        assert crc.kind is FaultKind.CRC and short.device == "brk"
        assert poller.counters["brk"].crc_errors >= 1 and poller.counters["brk"].short_frames >= 1
        assert poller.counters["tank"].crc_errors == 0
        assert confirmed.confirmed is True

    with pty_pair() as pair:
        asyncio.run(scenario(pair.a, pair.b))


def test_rtu_unplugged_line_takes_its_devices_offline():
    async def scenario(pair):
        lvl = profile("generic-level", interval_s=0.05)
        simulator = FieldSimulator([SimulatedDevice(lvl, 5)])
        await simulator.start_rtu(pair.b)
        queue: asyncio.Queue = asyncio.Queue()
        poller = Poller([spec("tank", lvl, SerialLink(pair.a), 5)], queue)
        try:
            async with Running(poller):
                await wait_for(queue, reading_of("tank", "level"))
                pair.unplug()
                offline = await wait_for(queue, lambda o: isinstance(o, DeviceOffline))
        finally:
            await simulator.stop()
        assert offline.device == "tank"

    with pty_pair() as pair:
        asyncio.run(scenario(pair))


def test_an_unchanged_answer_is_reported_again_and_a_change_at_once():
    """The poller keeps each read's last whole answer to skip decoding an unchanged one: every poll is still
    reported with its own time, a changed register with its new value, a value turned undecodable is a fault
    (not the kept value), and the point reads again once the device fixes it."""

    async def scenario():
        ai = profile("generic-ai8", interval_s=0.02)
        device = SimulatedDevice(ai, 4)
        for channel in range(1, 9):
            device.set_value(f"ch{channel}_ma", 4.0)
        queue: asyncio.Queue = asyncio.Queue()
        seen: list[Observation] = []
        async with polled([device], lambda link: [spec("ai", ai, link, 4)], queue):
            for _ in range(3):
                await wait_for(queue, reading_of("ai", "ch8_ma"), seen)
            device.set_value("ch1_ma", 12.5)
            await wait_for(queue, lambda o: reading_of("ai", "ch1_ma")(o) and o.value == 12.5, seen)
            device.set_registers(Function.INPUT, 4, [0x7FC0, 0x0000])  # ch3: NaN
            await wait_for(queue, lambda o: isinstance(o, PollFault), seen)
            device.set_value("ch3_ma", 7.0)
            await wait_for(queue, lambda o: reading_of("ai", "ch3_ma")(o) and o.value == 7.0, seen)
        ch1 = [o for o in seen if isinstance(o, Reading) and o.point == "ch1_ma"]
        assert [o.value for o in ch1][:3] == [4.0, 4.0, 4.0] and ch1[-1].value == 12.5
        assert all(a.mono < b.mono for a, b in zip(ch1, ch1[1:]))  # each poll reported with its own time
        ch3 = [o.value for o in seen if isinstance(o, Reading) and o.point == "ch3_ma"]
        fault = next(i for i, o in enumerate(seen) if isinstance(o, PollFault))
        assert "ch3_ma" in seen[fault].detail
        assert ch3[-1] == 7.0 and 4.0 not in [o.value for o in seen[fault:] if isinstance(o, Reading) and o.point == "ch3_ma"]

    asyncio.run(scenario())
