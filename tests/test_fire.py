"""Fire release: one block write where a module holds only egress doors, per-door otherwise; latched."""

from __future__ import annotations

import asyncio

from edge.config import Lock
from edge.doors.lock import DoorLock
from edge.fire import FireRelease


class Bus:
    """A relay module that confirms every write except those named in `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.writes: list[tuple[str, str]] = []
        self.refuse = refuse

    async def command(self, device: str, command: str) -> bool:
        self.writes.append((device, command))
        return command not in self.refuse


class Journal:
    def __init__(self) -> None:
        self.events = []

    async def append(self, event) -> int:
        self.events.append(event)
        return len(self.events)


def _locks(bus: Bus, fire: list, unconfirmed: list) -> dict[str, DoorLock]:
    async def note(door: str, command: str) -> None:
        unconfirmed.append((door, command))

    held = lambda: fire[0].active  # noqa: E731
    return {
        "front": DoorLock("front", Lock(device="io-1", release="release_1", secure="secure_1"), bus, note, held),
        "side": DoorLock("side", Lock(device="io-2", release="release_3", secure="secure_3"), bus, note, held),
    }


def test_fire_releases_by_block_and_per_door_keeps_released_until_reset():
    async def scenario():
        bus, journal, holder, unconfirmed = Bus(refuse=frozenset({"release_3"})), Journal(), [], []
        locks = _locks(bus, holder, unconfirmed)
        fire = FireRelease(locks, bus, journal, block_devices=frozenset({"io-1"}))
        holder.append(fire)
        states: list[bool] = []
        fire.on_change(states.append)
        await locks["front"].pulse(0.05)  # a grant in progress when the alarm comes
        fire.trigger("panel")
        fire.trigger("panel")  # latched: a second alarm changes nothing
        await asyncio.sleep(0.2)  # the pulse ends while the fire release holds
        released_writes = list(bus.writes)
        assert await fire.reset("tech-1")
        assert not await fire.reset("tech-1")
        return released_writes, bus.writes, journal.events, states, unconfirmed

    released, writes, events, states, unconfirmed = asyncio.run(scenario())
    assert released == [("io-1", "release_1"), ("io-1", "release_all"), ("io-2", "release_3")]
    assert ("io-1", "secure_1") in writes[len(released):] and ("io-2", "secure_3") in writes[len(released):]
    assert [e.kind for e in events] == ["alarm.fire_release", "alarm.fire_reset"]
    assert events[0].body["unconfirmed"] == ["side"], "a release the module did not confirm is named"
    assert ("side", "release_3") in unconfirmed
    assert events[1].body["operator"] == "tech-1"
    assert states == [True, False]
