"""Inactivity watch: an elder with no passes for the limit raises one alert to their care contact,
also across a SIGKILL and restart of the daemon (the watch reads the journal, not memory)."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from edge.doors.credentials.store import CredentialStore
from edge.community.inactivity import Care, InactivityWatch, LastPass, overdue
from edge.community.notifier import Notifier
from edge.config.building import load
from edge.runtime.control import DaemonUnavailable, ask, socket_path
from edge.events import Event, Kind, Priority
from edge.community.kinds import CommunityKind
from edge.doors.kinds import DoorKind
from edge.journal import Journal
from edge.hil import waiting

from community_rig import DOORS, events, trail_building, until
from journal_disk import mount_failing_card
from conftest import Daemon, building

SHANGHAI = ZoneInfo("Asia/Shanghai")
CARE_SON = {"name": "care-son", "role": "care_contact", "channels": ["cloud"]}
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)  # 20:00 in Shanghai


@pytest.mark.parametrize("care, last, now, due", [
    (dict(limit_hours=24), T0, T0 + timedelta(hours=23.9), False),
    (dict(limit_hours=24), T0, T0 + timedelta(hours=24), True),
    (dict(limit_hours=24), None, T0 + timedelta(hours=1), True),  # no pass known: counted from when the watch was set
    (dict(limit_hours=24, quiet_hours="22:00-07:00"), T0 + timedelta(hours=2), T0 + timedelta(hours=26, minutes=3), False),  # 22:03 local
    (dict(limit_hours=24, quiet_hours="22:00-07:00"), T0 - timedelta(hours=16), T0 + timedelta(hours=9), False),  # 05:00 local
    (dict(limit_hours=24, quiet_hours="22:00-07:00"), T0 - timedelta(hours=16), T0 + timedelta(hours=11, minutes=1), True),  # 07:01
    (dict(limit_hours=24, away_until=T0 + timedelta(days=3)), T0, T0 + timedelta(days=2), False),
    (dict(limit_hours=24, away_until=T0 + timedelta(days=3)), T0, T0 + timedelta(days=3, hours=23), False),  # counted from the return
    (dict(limit_hours=24, away_until=T0 + timedelta(days=3)), T0, T0 + timedelta(days=4), True),
])


def test_an_elder_is_overdue_past_the_limit_outside_quiet_hours_and_absences(care, last, now, due):
    record = Care(tenant="elder-7", contact="son", since=T0 - timedelta(days=1), **care)
    assert overdue(record, LastPass(1, last) if last else None, now, SHANGHAI) is due


async def _ask_once_up(control, request, timeout_s: float = 20.0):
    """Ask the daemon, waiting (with a deadline) for its control socket after a (re)start."""
    return await waiting.until(lambda: asyncio.to_thread(ask, control, request), timeout_s, "the daemon's answer",
                               ignore=(DaemonUnavailable,))


def test_no_passes_for_the_limit_alerts_the_care_contact_once_across_restarts(write_config, building_dir):
    config_path = write_config(building(DOORS, {"community": {"contacts": [CARE_SON], "inactivity_check_s": 0.2}}))
    config = load(config_path)

    async def scenario():
        await trail_building(config_path)  # elder-7 last passed the gate just now
        control = socket_path(config.state_path)
        daemon = Daemon(config_path, log=building_dir / "daemon.log").start()
        try:
            await until(lambda: events(config.journal_path, "gateway.started"), timeout_s=30, what="daemon up")
            refused = await _ask_once_up(control, {"op": "care.set", "tenant": "elder-7", "limit_hours": 0.002, "contact": "nobody", "operator": "grid-1"})
            assert not refused["ok"] and "unknown contact 'nobody'" in refused["error"]
            answer = await asyncio.to_thread(ask, control, {"op": "care.set", "tenant": "elder-7", "limit_hours": 0.002,  # 7.2 s
                                                             "contact": "care-son", "area": "unit-301", "operator": "grid-1"})
            assert answer["ok"], answer
            daemon.stop(signal.SIGKILL, timeout_s=10)  # before the limit: the restarted daemon must still know
            daemon.start()
            await until(lambda: events(config.journal_path, "alarm.inactivity"), timeout_s=40, what="the elder's alert")
            await until(lambda: events(config.journal_path, "notify.sent"), timeout_s=10, what="the care contact told")
            daemon.stop(signal.SIGKILL, timeout_s=10)
            daemon.start()
            await until(lambda: len(events(config.journal_path, "gateway.started")) == 3, timeout_s=30, what="restart")
            answer = await _ask_once_up(control, {"op": "care.set", "tenant": "child-9", "limit_hours": 0.0005,
                                                  "contact": "care-son", "operator": "grid-1"})
            assert answer["ok"], answer
            # the watch checked the elder again after this restart before it could alert for the child
            await until(lambda: any(e.body["tenant"] == "child-9" for e in events(config.journal_path, "alarm.inactivity")),
                        timeout_s=40, what="the second resident's alert")
            assert daemon.stop(timeout_s=15) == 0
        finally:
            daemon.kill()

    asyncio.run(scenario())
    alerts = events(config.journal_path, "alarm.inactivity")
    elder = [e for e in alerts if e.body["tenant"] == "elder-7"]
    assert len(elder) == 1, "one alert for one silence, whatever the restarts"
    assert elder[0].body["contact"] == "care-son" and elder[0].body["last_pass_seq"] is not None
    last = datetime.fromisoformat(elder[0].body["last_pass"])
    assert elder[0].wall - last >= timedelta(hours=0.002)
    told = [e.body for e in events(config.journal_path, "notify.sent") if e.body["incident"] == elder[0].id]
    assert [(b["recipient"], b["alarm"]) for b in told] == [("care-son", "inactivity")]
    print(f"\ninactivity: limit 7.2 s, alert {(elder[0].wall - last).total_seconds():.1f} s after the last pass (across a SIGKILL)")


@pytest.fixture
def state_card(building_dir):
    """The state dir on a real ext4 card that the test turns read-only under the watch."""
    yield from mount_failing_card(building_dir / "state")


def test_a_pass_while_the_state_disk_is_read_only_keeps_the_care_watch_quiet(write_config, state_card):
    """The elder passes the gate while the disk refuses writes: the journal cannot hold the pass
    (and may not even be readable), the bus has it, so no one is told she has been silent."""
    config_path = write_config(building(DOORS, {"community": {"contacts": [CARE_SON]}}))
    config = load(config_path)
    clock = [datetime.now(timezone.utc)]  # the watch's; moved on two hours once the disk refuses
    later = clock[0] + timedelta(hours=2)

    async def scenario():
        keys = await trail_building(config_path)
        journal = await Journal.open(config.journal_path)
        store = CredentialStore.open(config.state_path / "credentials.db", config.building.secret.read())
        notifier = Notifier(config.building.id, config.building.timezone, config.community, journal,
                            uplink_up=lambda: False, cloud_took=lambda seq: False, sms=None)
        watch = InactivityWatch(config.state_path, config.building.timezone, journal, notifier, lambda: store,
                                {"care-son"}, check_s=0.05, wall=lambda: clock[0])
        heard = []
        try:
            answer = await watch.set_care({"tenant": "elder-7", "limit_hours": 1, "contact": "care-son", "operator": "grid-1",
                                           "since": (later - timedelta(hours=3)).isoformat()})
            assert answer["ok"], answer
            with journal.bus.subscribe("test", kinds=(CommunityKind.INACTIVITY_ALERT,)) as alerts:
                watching = asyncio.create_task(watch.run())
                listening = asyncio.create_task(_collect(alerts, heard))
                try:
                    await until(lambda: watch.checks > 0, what="the first check")
                    assert heard == [], "she passed the gate just now"
                    state_card.fail()
                    await journal.append(Event(Kind.POINT_READING, Priority.TELEMETRY, "mon", {"value": 1}))
                    await until(lambda: journal.degraded, what="the journal degraded")
                    head = journal.head_seq
                    await journal.append(Event(DoorKind.ACCESS_DECISION, Priority.ACCESS, "r-gate", {
                        "door": "gate", "reader": "r-gate", "reason": "granted", "granted": True,
                        "credential": keys["elder-7"][:12]}, wall_ns=int((later - timedelta(minutes=1)).timestamp() * 1e9)))
                    clock[0] = later  # two hours after her last pass on disk, a minute after the one the bus heard
                    checked = watch.checks
                    await until(lambda: watch.checks > checked + 2, what="checks after the pass")
                    assert not watching.done(), "the watch runs on while the journal cannot be written"
                    assert journal.degraded and journal.head_seq == head, "the disk refused throughout"
                    assert heard == [], "the elder passed the gate a minute ago"
                finally:
                    for task in (watching, listening):
                        task.cancel()
                    await asyncio.gather(watching, listening, return_exceptions=True)
        finally:
            store.close()
            await journal.close(timeout_s=1)

    asyncio.run(scenario())


async def _collect(subscriber, into: list) -> None:
    async for notice in subscriber:
        into.append(notice)
