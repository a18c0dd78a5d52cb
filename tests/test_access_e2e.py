"""The access path end to end: frames into a pty, the gateway's doors, coils of a simulated IO module."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.drivers.modbus.profile import load_profile
from edge.config import building as building_config
from edge.config.building import device_profiles
from edge.doors.wiring import assemble_doors, credentials_path
from edge.fieldbus.devices import FieldBus, PointKey, device_specs
from edge.journal import EventQuery, Journal, read_events
from edge.runtime.supervisor import Backoff, Supervisor
from edge.hil.card_sim import CardReaderSim
from edge.uplink.commands import CommandTable
from edge.hil.modbus_sim import Fault, FaultPlan, FieldSimulator, SimulatedDevice
from edge.hil.pty import pty_pair
from edge.hil.waiting import until

from access_rig import KEYPAD_TENANT, PIN, enrol
from conftest import REPO, building, doors_io, io_lock

pytestmark = pytest.mark.timeout(60)

TENANT = b"\x01\x00\x12\x93\xd8"
FLAGGED = b"\x01\x00\x00\x00\x07"


class Building:
    """The doors of a building wired as the gateway wires them, with simulated hardware."""

    def __init__(self, write_config, card_port: str, keypad_port: str, wall=None, fire: bool = True, extra: dict | None = None,
                 supervised: bool = False) -> None:
        self.write_config, self.card_port, self.keypad_port, self.wall, self.fire = write_config, card_port, keypad_port, wall, fire
        self.extra = extra or {}  # sections added to the building
        self.supervised = supervised  # the doors' jobs restarted as the gateway's Supervisor does (quickly)

    async def __aenter__(self) -> Building:
        self.io = SimulatedDevice(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
        self.simulator = FieldSimulator([self.io])
        port = await self.simulator.start_tcp()
        path = self.write_config(building(doors_io(port), {
            "readers": [{"name": "front-reader", "protocol": "em4100", "port": self.card_port},
                        {"name": "keypad-reader", "protocol": "wiegand", "port": self.keypad_port, "keypad": True}],
            "doors": [{"name": "front", "readers": ["front-reader"], "groups": ["entrances"], "lock": io_lock(1), "contact": "doors-io.input_1",
                       "exit_button": "doors-io.input_2", "fail": "safe", "egress": True, "unlock_s": 0.5, "held_open_s": 0.6},
                      {"name": "side", "readers": ["keypad-reader"], "groups": ["entrances"], "lock": io_lock(2), "egress": True,
                       "require_pin": True, "unlock_s": 0.5}]},
            {"fire_alarm": "doors-io.input_8"} if self.fire else {}, self.extra))
        self.config = building_config.load(path)
        return self

    async def start(self) -> None:
        self.journal = await Journal.open(self.config.journal_path)
        self.fieldbus = FieldBus(device_specs(self.config, device_profiles(self.config)), self.journal)
        self.doors = assemble_doors(self.config, self.journal, self.fieldbus)
        self.doors.access.pin_wait_s = 0.5
        if self.wall is not None:
            self.doors.access.wall = self.wall
        self.tasks = [asyncio.create_task(self.fieldbus.run())]
        if self.supervised:
            self.supervisor = Supervisor(self.journal, Backoff(initial_s=0.1, max_s=0.5))
            for name, work in self.doors.work.items():
                self.supervisor.start(name, work)
            self.tasks += list(self.supervisor.tasks.values())
        else:
            self.tasks += [asyncio.create_task(work()) for work in self.doors.work.values()]
        await asyncio.sleep(0.3)  # ports open, first poll done

    async def stop(self) -> None:
        """The gateway stops (as on SIGTERM); the simulated hardware stays."""
        for task in getattr(self, "tasks", []):
            task.cancel()
        await asyncio.gather(*getattr(self, "tasks", []), return_exceptions=True)
        self.tasks = []
        if hasattr(self, "journal"):
            await self.journal.close()
            del self.journal

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        await self.simulator.stop()

    def events(self, kind: str) -> list:
        return read_events(self.config.journal_path, EventQuery(kinds=(kind,), limit=None))


async def wait_for_event(building: Building, kind: str, count: int = 1) -> list:
    await until(lambda: len(building.events(kind)) >= count, 5.0, every_s=0.02)
    return building.events(kind)


def test_granted_card_pulses_the_lock_and_unknown_and_flagged_are_journaled(write_config):
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                enrol(building.config, TENANT)
                enrol(building.config, FLAGGED, status="flagged")
                await building.start()
                with CardReaderSim(cards.a, "em4100") as reader:
                    reader.present(TENANT, repeats=3)  # a card lying on the reader: one read
                    await until(lambda: building.io.value_of("relay_1") is True, 5.0, every_s=0.02)
                    await until(lambda: building.io.value_of("relay_1") is False, 5.0, every_s=0.02)
                    reader.present(b"\x09\x09\x09\x09\x09")
                    reader.present(FLAGGED)
                    decisions = await wait_for_event(building, "access.decision", 3)
                    alarms = await wait_for_event(building, "alarm.access_flagged")
                return decisions, alarms

    decisions, alarms = asyncio.run(scenario())
    assert [(e.body["reason"], e.body["granted"]) for e in decisions] == [
        ("granted", True), ("unknown_card", False), ("flagged", False)]
    assert all(e.body["door"] == "front" and e.source == "front-reader" for e in decisions)
    assert decisions[0].body["credential"] and TENANT.hex() not in str(decisions[0].body)
    assert decisions[1].body["credential"] is None
    assert alarms[0].priority.name == "ALARM" and alarms[0].body["credential"] == decisions[2].body["credential"]


def test_keypad_reader_requires_the_right_pin(write_config):
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                enrol(building.config, KEYPAD_TENANT, pin=PIN)
                await building.start()
                with CardReaderSim(keypad.a, "wiegand") as reader:
                    reader.present(KEYPAD_TENANT)  # no PIN: times out
                    await wait_for_event(building, "access.decision", 1)
                    reader.present(KEYPAD_TENANT)
                    reader.pin("9999")
                    await wait_for_event(building, "access.decision", 2)
                    reader.present(KEYPAD_TENANT)
                    reader.pin(PIN)
                    await until(lambda: building.io.value_of("relay_2") is True, 5.0, every_s=0.02)
                    return await wait_for_event(building, "access.decision", 3)

    decisions = asyncio.run(scenario())
    assert [e.body["reason"] for e in decisions] == ["pin_required", "pin_wrong", "granted"]


def test_door_forced_held_open_and_exit_button(write_config):
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                await building.start()
                building.io.set_value("input_1", True)  # opened with no grant: forced
                await wait_for_event(building, "alarm.door_forced")
                await wait_for_event(building, "alarm.door_held_open")
                building.io.set_value("input_1", False)
                await wait_for_event(building, "door.closed")
                building.io.set_value("input_2", True)  # exit button: free exit, lock pulsed
                await until(lambda: building.io.value_of("relay_1") is True, 5.0, every_s=0.02)
                building.io.set_value("input_2", False)
                building.io.set_value("input_1", True)
                await wait_for_event(building, "access.exit")
                await asyncio.sleep(0.3)
                building.io.set_value("input_1", False)
                await asyncio.sleep(0.3)
                return building.events("alarm.door_forced"), building.events("access.exit")

    forced, exits = asyncio.run(scenario())
    assert len(forced) == 1, "an opening after an exit request is not forced"
    assert exits[0].body == {"door": "front"}


def test_fire_alarm_releases_egress_doors_with_a_broken_credential_store(write_config):
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                path = credentials_path(building.config)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\x00not a database" * 100)
                await building.start()
                building.io.set_value("input_8", True)
                await until(lambda: building.io.value_of("relay_1") and building.io.value_of("relay_2"), 5.0, every_s=0.02)
                building.io.set_value("input_8", False)
                with CardReaderSim(cards.a, "em4100") as reader:
                    reader.present(TENANT)
                    decisions = await wait_for_event(building, "access.decision")
                await asyncio.sleep(0.7)  # longer than an unlock pulse: still released
                assert building.io.value_of("relay_1") and building.io.value_of("relay_2")
                released = await wait_for_event(building, "alarm.fire_release")
                assert await building.doors.fire.reset("tech-7")
                await until(lambda: not building.io.value_of("relay_1") and not building.io.value_of("relay_2"), 5.0, every_s=0.02)
                return decisions, released, await wait_for_event(building, "alarm.fire_reset"), building.events("fault.credentials_unavailable")

    decisions, released, reset, unavailable = asyncio.run(scenario())
    assert unavailable, "the broken store is journaled"
    assert released[0].body["doors"] == ["front", "side"] and released[0].body["unconfirmed"] == []
    assert released[0].priority.name == "ALARM"
    assert decisions[0].body["reason"] == "fire_release" and decisions[0].body["granted"]
    assert reset[0].body["operator"] == "tech-7"


def test_an_implausible_clock_is_a_fault_and_denies_by_date(write_config):
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b, wall=lambda: datetime(1970, 1, 1, tzinfo=UTC)) as building:
                enrol(building.config, TENANT)
                await building.start()
                with CardReaderSim(cards.a, "em4100") as reader:
                    reader.present(TENANT)
                    decisions = await wait_for_event(building, "access.decision")
                return decisions, await wait_for_event(building, "fault.clock_untrusted")

    decisions, faults = asyncio.run(scenario())
    assert decisions[0].body["reason"] == "clock_untrusted" and not decisions[0].body["granted"]
    assert faults[0].body["fault"] == "before_release"


def test_remote_unlock_pulses_the_lock_once_and_is_audited(write_config):
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                await building.start()
                refused = [
                    await building.doors.access.remote_unlock({"door": "back", "operator": "T-17"}),
                    await building.doors.access.remote_unlock({"door": "front", "operator": " "}),
                ]
                answer = await building.doors.access.remote_unlock({"door": "front", "operator": "T-17", "reason": "delivery"})
                assert building.io.value_of("relay_1") is True
                building.io.set_value("input_1", True)  # someone walks through while it is open: not forced
                await asyncio.sleep(0.3)
                building.io.set_value("input_1", False)
                await until(lambda: building.io.value_of("relay_1") is False, 5.0, every_s=0.02)
                audit = await wait_for_event(building, "access.remote_unlock")
                await asyncio.sleep(0.3)
                return refused, answer, audit, building.events("alarm.door_forced")

    refused, answer, audit, forced = asyncio.run(scenario())
    assert [r["ok"] for r in refused] == [False, False]
    assert "no door named 'back'" in refused[0]["error"] and "operator" in refused[1]["error"]
    assert answer["ok"] is True and answer["confirmed"] is True
    assert [(e.body["door"], e.body["operator"], e.body["reason"], e.priority.name) for e in audit] == [
        ("front", "T-17", "delivery", "ACCESS")]
    assert forced == []


def test_a_million_garbage_bytes_cost_a_handful_of_events_and_grant_nothing(write_config):
    garbage = random.Random(467).randbytes(1_000_000)

    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                enrol(building.config, TENANT)
                await building.start()
                worker = building.doors.work["reader:front-reader"].__self__
                relay_seen: list[bool] = []
                building.fieldbus.subscribe(PointKey.parse("doors-io.relay_1"), lambda r: relay_seen.append(bool(r.value)))
                with CardReaderSim(cards.a, "em4100") as reader:
                    for start in range(0, len(garbage), 4096):
                        await asyncio.to_thread(reader.write, garbage[start:start + 4096])
                    await wait_for_event(building, "fault.reader_garbage")
                    opened_by_garbage = any(relay_seen)
                    reader.write(b"\x03")  # end whatever frame the garbage left open
                    reader.present(TENANT)  # a real card after the flood: the line still works
                    decisions = await wait_for_event(building, "access.decision")
                    await until(lambda: building.io.value_of("relay_1") is True, 5.0, every_s=0.02)
                dropped = sum(worker.drops.values())
                for task in building.tasks:  # a clean stop flushes the counts held back
                    task.cancel()
                await asyncio.gather(*building.tasks, return_exceptions=True)
                building.tasks = []
                await building.journal.flush()
                return opened_by_garbage, decisions, dropped, building.events("fault.reader_garbage")

    opened_by_garbage, decisions, dropped, events = asyncio.run(scenario())
    assert not opened_by_garbage
    assert [(e.body["reason"], e.body["granted"]) for e in decisions] == [("granted", True)], "garbage decided nothing"
    causes = {e.body["cause"] for e in events}
    assert len(events) <= 2 * len(causes) <= 12, f"{len(events)} events for {dropped} drops"
    assert all(e.source == "front-reader" and e.priority.name == "FAULT" for e in events)
    assert sum(e.body["count"] for e in events) == dropped > 1000, "every drop is counted once"


def test_a_stalled_journal_does_not_hold_up_the_unlock(write_config):
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                enrol(building.config, TENANT)
                await building.start()
                gate, append = asyncio.Event(), building.journal.append

                async def stalled(event):
                    await gate.wait()
                    return await append(event)

                building.journal.append = stalled  # the SD card stops answering
                with CardReaderSim(cards.a, "em4100") as reader:
                    reader.present(TENANT)
                    await until(lambda: building.io.value_of("relay_1") is True, 5.0, every_s=0.02)
                    journaled_before = building.events("access.decision")
                    gate.set()
                    decisions = await wait_for_event(building, "access.decision")
                return journaled_before, decisions

    journaled_before, decisions = asyncio.run(scenario())
    assert journaled_before == []
    assert decisions[0].body["granted"]


def test_wrong_pins_lock_the_card_out_until_the_lockout_expires(write_config):
    lockout = {"access": {"pin_lockout": {"attempts": 2, "window_s": 60, "lockout_s": 1.5}}}

    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b, extra=lockout) as building:
                enrol(building.config, KEYPAD_TENANT, pin=PIN)
                await building.start()
                with CardReaderSim(keypad.a, "wiegand") as reader:
                    for attempt in (1, 2):
                        reader.present(KEYPAD_TENANT)
                        reader.pin("9999")
                        await wait_for_event(building, "access.decision", attempt)
                    lockouts = await wait_for_event(building, "alarm.pin_lockout")
                    reader.present(KEYPAD_TENANT)
                    reader.pin(PIN)  # the right PIN, but locked out: not even checked
                    await wait_for_event(building, "access.decision", 3)
                    opened_while_locked = building.io.value_of("relay_2")
                    seen = [3]

                    async def granted() -> bool:  # tried again until the lockout has expired
                        if building.events("access.decision")[-1].body["reason"] == "granted":
                            return True
                        reader.present(KEYPAD_TENANT)
                        reader.pin(PIN)
                        seen[0] += 1
                        await wait_for_event(building, "access.decision", seen[0])
                        return False

                    await until(granted, 10, "the lockout expired", every_s=0)
                    await until(lambda: building.io.value_of("relay_2") is True, 5.0, every_s=0.02)
                return lockouts, building.events("access.decision"), opened_while_locked

    lockouts, decisions, opened_while_locked = asyncio.run(scenario())
    reasons = [e.body["reason"] for e in decisions]
    assert reasons[:3] == ["pin_wrong", "pin_wrong", "pin_locked_out"] and reasons[-1] == "granted"
    assert set(reasons[3:-1]) <= {"pin_locked_out"}
    assert not opened_while_locked
    [event] = lockouts
    assert event.priority.name == "ALARM" and event.source == "keypad-reader"
    assert event.body["scope"] == "credential" and event.body["attempts"] == 2 and event.body["door"] == "side"
    assert event.body["credential"] == decisions[0].body["credential"], "the card, by its key prefix, never its serial"


def test_the_fire_latch_survives_a_restart_until_reset(write_config):
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                await building.start()
                building.io.set_value("input_8", True)
                await until(lambda: building.io.value_of("relay_1") and building.io.value_of("relay_2"), 5.0, every_s=0.02)
                await wait_for_event(building, "alarm.fire_release")
                building.io.set_value("input_8", False)  # the panel clears; the latch holds
                await building.stop()
                building.io.set_value("relay_1", False)  # the IO module lost power with the gateway
                building.io.set_value("relay_2", False)
                await building.start()
                await until(lambda: building.io.value_of("relay_1") and building.io.value_of("relay_2"), 5.0, every_s=0.02)
                released = await wait_for_event(building, "alarm.fire_release", 2)
                assert building.doors.fire.active
                await until(lambda: building.doors.fire.inputs["doors-io.input_8"].read_at is not None, 5.0, every_s=0.02)
                answer = await building.doors.fire.reset_request({"operator": "tech-7"})
                await until(lambda: not building.io.value_of("relay_1") and not building.io.value_of("relay_2"), 5.0, every_s=0.02)
                latch_left = (building.config.state_path / "fire-latch.json").exists()
                await building.stop()
                await building.start()  # after the reset a restart releases nothing
                await until(lambda: building.fieldbus.is_online("doors-io"), 5.0, every_s=0.02)
                return released, answer, latch_left, building.doors.fire.active

    released, answer, latch_left, active_after_reset = asyncio.run(scenario())
    assert released[0].body.get("latch_saved") is True and "restored" not in released[0].body
    assert released[1].body["restored"] is True and released[1].body["source"] == "doors-io.input_8"
    assert answer["ok"] and not latch_left and not active_after_reset


def test_a_fire_reset_is_refused_while_the_fire_input_is_active_or_not_known(write_config):
    """Securing the egress doors while the panel still signals fire would lock them until the
    next poll released them again: the reset is refused, journaled, and names the input."""
    async def scenario():
        with pty_pair() as cards, pty_pair() as keypad:
            async with Building(write_config, cards.b, keypad.b) as building:
                await building.start()
                fire = building.doors.fire
                cloud = CommandTable()  # the table the uplink runs signed cloud commands through
                cloud.register("fire.reset", fire.reset_request)
                building.io.set_value("input_8", True)
                await until(lambda: building.io.value_of("relay_1") and building.io.value_of("relay_2"), 5.0, every_s=0.02)
                await wait_for_event(building, "alarm.fire_release")
                local = await fire.reset_request({"operator": "tech-7"})
                held_after_local = (building.io.value_of("relay_1"), building.io.value_of("relay_2"))
                remote = await cloud.run("fire.reset", {"operator": "cloud-ops"})
                held_after_remote = (building.io.value_of("relay_1"), building.io.value_of("relay_2"))

                building.io.set_value("input_8", False)  # the panel clears, then the module stops answering
                await until(lambda: fire.inputs["doors-io.input_8"].active is False, 5.0, every_s=0.02)
                building.io.fault = FaultPlan(Fault.SILENT)
                await until(lambda: not building.fieldbus.is_online("doors-io"), 5.0, every_s=0.02)
                unknown = await fire.reset_request({"operator": "tech-7"})
                building.io.fault = None
                await until(lambda: building.fieldbus.is_online("doors-io"), 5.0, every_s=0.02)
                await until(lambda: not fire.inputs["doors-io.input_8"].holds_reset(time.monotonic()), 5.0, every_s=0.02)
                done = await fire.reset_request({"operator": "tech-7"})
                await until(lambda: not building.io.value_of("relay_1") and not building.io.value_of("relay_2"), 5.0, every_s=0.02)
                refusals = await wait_for_event(building, "alarm.fire_reset_refused", 3)
                return local, held_after_local, remote, held_after_remote, unknown, done, refusals, building.events("alarm.fire_reset")

    local, held_after_local, remote, held_after_remote, unknown, done, refusals, resets = asyncio.run(scenario())
    assert local["ok"] is False and "doors-io.input_8 still reads active" in local["error"]
    assert held_after_local == (True, True) and held_after_remote == (True, True), "the doors stayed released"
    assert remote.detail["ok"] is False and "doors-io.input_8 still reads active" in remote.detail["error"]
    assert unknown["ok"] is False and "doors-io.input_8: its device is offline" in unknown["error"]
    assert done["ok"] is True
    assert [(e.body["operator"], e.priority.name) for e in refusals] == [("tech-7", "ALARM"), ("cloud-ops", "ALARM"), ("tech-7", "ALARM")]
    assert local["result_seq"] == refusals[0].seq and refusals[0].body["inputs"] == ["fire input doors-io.input_8 still reads active"]
    assert [e.body["operator"] for e in resets] == ["tech-7"], "only the reset with the input clear and known"


class _Cable:
    """A socat pty pair at fixed paths that can be pulled and plugged in again (a USB reader's adapter)."""

    def __init__(self, reader_end: Path, gateway_end: Path) -> None:
        self.reader_end, self.gateway_end = reader_end, gateway_end
        self.process: subprocess.Popen | None = None

    def plug(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("socat"), f"pty,raw,echo=0,link={self.reader_end}", f"pty,raw,echo=0,link={self.gateway_end}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def plugged(self) -> None:
        await until(lambda: self.reader_end.exists() and self.gateway_end.exists(), 5.0, every_s=0.02)

    def pull(self) -> None:
        """Stop socat (SIGTERM: it removes its links, so no dangling link can meet a reused pty)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


def test_a_reader_plugged_back_in_is_journaled_restored_before_any_tap(write_config, tmp_path: Path):
    cable = _Cable(tmp_path / "reader-end", tmp_path / "gateway-end")

    async def scenario():
        with pty_pair() as keypad:
            cable.plug()
            await cable.plugged()
            try:
                async with Building(write_config, str(cable.gateway_end), keypad.b, supervised=True) as building:
                    await building.start()
                    cable.pull()  # the adapter is pulled: read fails, then the port is missing
                    await until(lambda: {"disconnected", "port_missing"} <= reasons(building, "fault.reader"), 5.0, every_s=0.02)
                    cable.plug()  # and plugged in again; nobody taps a card
                    await cable.plugged()
                    await until(lambda: reasons(building, "fault.reader_restored") == {"disconnected", "port_missing"}, 5.0, every_s=0.02)
                    return building.events("fault.reader"), building.events("fault.reader_restored"), building.events("access.decision")
            finally:
                cable.pull()

    def reasons(building: Building, kind: str) -> set[str]:
        return {e.body["reason"] for e in building.events(kind)}

    faults, restored, decisions = asyncio.run(scenario())
    assert decisions == [], "no card was read: the restore came from the port opening again"
    assert all(e.source == "front-reader" and e.priority.name == "FAULT" for e in faults + restored)
    assert [e.body["reason"] for e in restored] == ["disconnected", "port_missing"], "each reason cleared once, in order"
    assert all(e.seq > max(f.seq for f in faults) for e in restored)
    assert all(e.body["detail"] == f"port {cable.gateway_end} open again" for e in restored)
