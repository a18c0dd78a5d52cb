"""Fire release: one block write where a module holds only egress doors, per-door otherwise; latched."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from edge.drivers.modbus.observations import Reading
from edge.drivers.modbus.profile import load_profile
from edge.doors.settings import Lock
from edge.doors.lock import DoorLock
from edge.doors.fire import FireRelease
from edge.journal import EventQuery, read_events
from edge.hil.modbus_sim import SimulatedDevice
from edge.hil.waiting import until

from conftest import REPO, Daemon, building, doors_io, edge, io_lock, merged
from field_rig import SimulatorThread, journal_until


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


def test_a_module_that_also_holds_a_lift_car_gets_no_block_write(write_config):
    """release_all sets every relay of the module: with a camera's car-hold relay on it, a fire
    would hold the car it must let go, so its egress doors are released one by one."""
    from edge.config.building import device_profiles, load

    doors = merged(doors_io(502, poll_s=None, timeout_s=None), {"doors": [{"name": "front", "egress": True, "lock": io_lock(1)}]})
    camera = {"cameras": [{"name": "lift-1-cam", "source": "lift.mjpeg", "hold": {"device": "doors-io", "hold": "release_7", "resume": "secure_7"}}]}
    blocks = []
    for house in (building(doors), building(doors, camera)):
        config = load(write_config(house))
        locks = {door.name: DoorLock(door.name, door.lock, Bus(), None, lambda: True) for door in config.doors}
        blocks.append(FireRelease.for_building(config, locks, Bus(), Journal(), device_profiles(config)).block_devices)
    assert blocks == [frozenset({"doors-io"}), frozenset()]


def test_edge_fire_reset_is_refused_while_the_panel_still_signals_fire(write_config):
    """The technician's command against `edge run`: refused with the input named (exit 1), the
    doors stay released; once the input reads clear the same command secures them."""
    io = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
    io.set_value("input_8", True)  # the panel signals fire from the start
    with SimulatorThread([io]) as port:
        config = write_config(building(doors_io(port, poll_s=0.1), {"doors": [{"name": "front", "egress": True, "lock": io_lock(1)}],
                                                               "fire_alarm": "doors-io.input_8"}))
        journal = config.parent / "state" / "journal.db"
        with Daemon(config, stop_s=10, strict=True):
            journal_until(lambda: journal.exists() and read_events(journal, EventQuery(kinds=("alarm.fire_release",))))
            journal_until(lambda: io.value_of("relay_1") is True)
            refused = edge("fire", "reset", "--operator", "tech-7", "--config", str(config))
            still_released = io.value_of("relay_1")
            io.set_value("input_8", False)
            done = journal_until(lambda: (r := edge("fire", "reset", "--operator", "tech-7", "--config", str(config))).returncode == 0 and r)
            secured = io.value_of("relay_1")
    assert refused.returncode == 1 and still_released is True
    assert "doors-io.input_8 still reads active" in refused.stderr and "journal seq" in refused.stderr, refused.stderr
    assert "front secured" in done.stdout and secured is False
    kinds = [e.kind for e in read_events(journal, EventQuery(kinds=("alarm.fire_reset*",), limit=None))]
    assert kinds[0] == "alarm.fire_reset_refused" and kinds[-1] == "alarm.fire_reset"


def test_a_pulse_door_released_at_start_is_released_again_after_the_longest_pulse_it_may_be_in():
    """A gateway restarted during a fire may find its module still timing a pulse the last run
    sent: the restored release is written again once the longest such pulse would be over."""
    async def scenario():
        bus, journal, holder, unconfirmed = Bus(), Journal(), [], []

        async def note(door: str, command: str) -> None:
            unconfirmed.append((door, command))

        lock = DoorLock("front", Lock(device="io-1", pulse="pulse_1", release="release_1", secure="secure_1"), bus, note,
                        lambda: holder[0].active, pulse_s=(0.1, 0.3))
        fire = FireRelease({"front": lock}, bus, journal)
        holder.append(fire)
        fire.trigger("panel")
        await until(lambda: bus.writes.count(("io-1", "release_1")) >= 2, 5, lambda: f"release written again ({bus.writes})", every_s=0.02)
        assert await fire.reset("tech-1")
        return bus.writes, unconfirmed

    writes, unconfirmed = asyncio.run(scenario())
    assert writes == [("io-1", "release_1"), ("io-1", "release_1"), ("io-1", "secure_1")] and unconfirmed == []


def test_a_reset_waits_for_a_fire_input_read_clear_recently_and_validly():
    async def scenario():
        bus, journal, holder, unconfirmed, now = Bus(), Journal(), [], [], [100.0]
        fire = FireRelease(_locks(bus, holder, unconfirmed), bus, journal, clock=lambda: now[0])
        holder.append(fire)
        fire.watch("io-1.fire", stale_after_s=2.0)
        fire.trigger("panel")  # e.g. a latch restored at start: the input not read yet
        answers = [await fire.reset_request({"operator": "tech-1"})]
        fire.alarm_input(Reading("io-1", "fire", None, "", 100.0))  # the device voids the reading
        answers.append(await fire.reset_request({"operator": "tech-1"}))
        fire.alarm_input(Reading("io-1", "fire", False, "", 100.0))
        now[0] = 103.0  # and nothing since
        answers.append(await fire.reset_request({"operator": "tech-1"}))
        fire.alarm_input(Reading("io-1", "fire", False, "", 103.0))
        answers.append(await fire.reset_request({"operator": "tech-1"}))
        return answers, journal.events, fire.active

    answers, events, active = asyncio.run(scenario())
    assert [a["ok"] for a in answers] == [False, False, False, True] and not active
    assert "io-1.fire has not been read since the gateway started" in answers[0]["error"]
    assert "io-1.fire reads no valid value" in answers[1]["error"]
    assert "io-1.fire has not been read for 3.0 s" in answers[2]["error"]
    assert [e.kind for e in events] == ["alarm.fire_release"] + ["alarm.fire_reset_refused"] * 3 + ["alarm.fire_reset"]
    assert [a["result_seq"] for a in answers[:3]] == [2, 3, 4]


def test_a_fire_during_a_reset_releases_right_after_its_secure_writes_and_stays_latched(tmp_path: Path):
    """The reset secures the doors under the relay lock and removes the latch file after it: a fire
    arriving meanwhile releases as soon as the secure batch is written (never behind the latch's
    fsync), and its own latch is saved after the reset's removal, so a restart still releases."""
    latch = tmp_path / "state" / "fire-latch.json"

    class SlowSecure(Bus):
        async def command(self, device: str, command: str) -> bool:
            if command.startswith("secure"):
                await asyncio.sleep(0.2)  # a relay module answering slowly
            return await super().command(device, command)

    async def scenario():
        bus, journal, holder, unconfirmed = SlowSecure(), Journal(), [], []
        fire = FireRelease(_locks(bus, holder, unconfirmed), bus, journal, latch_path=latch)
        holder.append(fire)
        fire.trigger("panel")
        await asyncio.gather(*fire._tasks)
        reset = asyncio.create_task(fire.reset("tech-1"))
        await until(lambda: any(command.startswith("secure") for _, command in bus.writes), 10, "the reset securing", every_s=0.005)
        fire.trigger("panel")  # the panel again, while the doors are being secured
        assert await reset
        await asyncio.gather(*fire._tasks)
        return bus.writes, fire.active, latch.exists(), [e.kind for e in journal.events]

    writes, active, latched, kinds = asyncio.run(scenario())
    commands = [command for _, command in writes]
    last_secure = max(i for i, c in enumerate(commands) if c.startswith("secure"))
    assert commands[last_secure + 1:] and all(c.startswith("release") for c in commands[last_secure + 1:]), commands
    assert active and latched, "the second fire is latched across a restart"
    assert kinds == ["alarm.fire_release", "alarm.fire_reset", "alarm.fire_release"]
