"""Commands on a shared wire, against pymodbus servers: they go ahead of polls (issue 9, item 6)."""

from __future__ import annotations

import asyncio

from drivers.modbus.observations import Reading
from drivers.modbus.poller import Poller
from hil.modbus_sim import Fault, FaultPlan, SimulatedDevice

from test_modbus_poller import ONCE, WAIT_S, Running, profile, spec, tcp_rig, wait_for

FC_WRITE_COIL = 5


async def until(predicate, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {WAIT_S} s")
        await asyncio.sleep(0.005)


def test_an_unlock_overtakes_a_queued_poll():
    async def scenario():
        busy = SimulatedDevice(profile("generic-dio8", interval_s=ONCE), 1)
        door = SimulatedDevice(profile("generic-dio8", interval_s=0.02), 2)
        simulator, link = await tcp_rig(busy, door)
        queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        poller = Poller([spec("busy", busy.profile, link, 1, timeout_s=3.0), spec("door", door.profile, link, 2, timeout_s=3.0)], queue)
        try:
            async with Running(poller):
                await wait_for(queue, lambda o: isinstance(o, Reading) and o.device == "door")
                drain = asyncio.create_task(_drain(queue))
                busy.fault = FaultPlan(Fault.SLOW, delay_s=0.5)  # its next answer holds the wire
                holding = asyncio.create_task(poller.write_command("busy", "release_1"))
                await until(lambda: poller.queued("door") == 1, "the door's next poll queueing behind the slow write")
                unlock = asyncio.create_task(poller.write_command("door", "release_1"))
                await until(lambda: poller.queued("door") == 2, "the unlock queueing")
                assert await asyncio.wait_for(unlock, WAIT_S)
                holding.cancel()
                drain.cancel()
                await asyncio.gather(holding, drain, return_exceptions=True)
        finally:
            await simulator.stop()
        log = list(simulator.requests)
        slow_write = log.index((1, FC_WRITE_COIL))
        assert log[slow_write + 1] == (2, FC_WRITE_COIL), f"after the slow write the wire went to {log[slow_write + 1]}"

    asyncio.run(scenario())


async def _drain(queue: asyncio.Queue) -> None:
    while True:
        await queue.get()


def test_a_waiter_cancelled_in_the_lane_neither_blocks_nor_loses_the_wire():
    from drivers.modbus.lane import Lane, Priority

    async def scenario():
        lane = Lane()
        order: list[str] = []
        await lane.acquire(Priority.POLL)

        async def take(name: str, priority: Priority) -> None:
            await lane.acquire(priority)
            order.append(name)
            lane.release()

        poll = asyncio.create_task(take("poll", Priority.POLL))
        gone = asyncio.create_task(take("gone", Priority.COMMAND))
        command = asyncio.create_task(take("command", Priority.COMMAND))
        await until(lambda: lane.waiting == 3, "three waiters")
        gone.cancel()
        lane.release()
        await asyncio.wait_for(asyncio.gather(poll, command), WAIT_S)
        assert order == ["command", "poll"] and gone.cancelled()
        await asyncio.wait_for(lane.acquire(Priority.POLL), WAIT_S)  # free again

    asyncio.run(scenario())
