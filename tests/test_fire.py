"""Fire release: one block write where a module holds only egress doors, per-door otherwise; latched."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

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


def test_the_latch_is_saved_removed_by_reset_and_an_unreadable_one_still_releases(tmp_path: Path):
    latch = tmp_path / "state" / "fire-latch.json"

    async def scenario():
        bus, journal, holder, unconfirmed = Bus(), Journal(), [], []
        fire = FireRelease(_locks(bus, holder, unconfirmed), bus, journal, latch_path=latch)
        holder.append(fire)
        assert not fire.restore(), "no latch file: nothing to restore"
        fire.trigger("panel")
        await asyncio.gather(*fire._tasks)
        saved = json.loads(latch.read_text())
        assert await fire.reset("tech-1")
        removed = not latch.exists()
        latch.write_text("{not json")  # a torn or foreign file: fail towards released
        again = FireRelease(_locks(bus, holder, unconfirmed), bus, journal, latch_path=latch)
        holder[0] = again
        restored = again.restore()
        await asyncio.gather(*again._tasks)
        return saved, removed, restored, again.active, journal.events

    saved, removed, restored, active, events = asyncio.run(scenario())
    assert saved["source"] == "panel" and saved["since"]
    assert removed and restored and active
    assert [e.kind for e in events] == ["alarm.fire_release", "alarm.fire_reset", "alarm.fire_release"]
    assert events[0].body["latch_saved"] is True
    assert events[2].body["restored"] is True and events[2].body["source"] == "unknown"
    assert not list(latch.parent.glob("*.tmp")), "no temporary file left behind"
