"""The notifier with a real journal and the modem simulator on a pty: the cloud's confirmation
deadline, the SMS cap that never hides a new kind, and an SMS that is never confirmed."""

from __future__ import annotations

import asyncio
import time

from edge.community.notifier import Alarm, Notifier
from edge.community.settings import AlarmKind, CommunitySafety
from edge.community.sms import SmsSender
from edge.journal import Journal
from edge.hil.modem_sim import Mode, ModemSimulator
from edge.hil.pty import pty_pair

from community_rig import events, until
from conftest import in_background


def _settings(port: str, **extra) -> CommunitySafety:
    return CommunitySafety.model_validate({
        "contacts": [{"name": "landlord", "role": "landlord", "phone": "+8613800000001"}],
        "routes": [{"name": "first", "alarms": ["smoke", "panic", "intrusion"], "notify": ["landlord"]}],
        "modem": {"port": port, "timeout_s": 1.0, "retries": 1, "delivery_within_s": extra.pop("delivery_within_s", 30)},
        **extra,
    })


async def _notifier(tmp_path, settings, cloud_took, scenario):
    journal = await Journal.open(tmp_path / "journal.db")
    notifier = Notifier("test-house", "Asia/Shanghai", settings, journal, uplink_up=lambda: True, cloud_took=cloud_took,
                        sms=SmsSender(settings.modem))
    try:
        async with in_background(notifier.run()):
            await scenario(notifier)
    finally:
        await notifier.sms.close()
        await journal.close()
    return journal.path


def _alarm(kind: AlarmKind, n: int) -> Alarm:
    return Alarm(kind, "unit-301", f"input-{n}", f"alarm-{kind}-{n}", time.monotonic())


def test_a_notification_the_cloud_does_not_take_in_time_goes_by_sms_and_one_it_takes_does_not(tmp_path):
    with pty_pair() as (ours, theirs), ModemSimulator(theirs) as modem:
        settings = _settings(ours, cloud_confirm_s=1.0)
        taken: set[int] = set()

        async def scenario(notifier):
            notifier.alarm(_alarm(AlarmKind.SMOKE, 1))
            await until(lambda: modem.messages, what="the SMS after the cloud's deadline")
            taken.add(-1)  # from now on the cloud takes everything
            notifier.alarm(_alarm(AlarmKind.PANIC, 2))
            await until(lambda: len(events(tmp_path / "journal.db", "notify.sent")) == 2, what="the second notification")
            deadline = time.monotonic() + settings.cloud_confirm_s
            await until(lambda: time.monotonic() > deadline, what="past the second deadline")
            ticks = notifier.ticks
            await until(lambda: notifier.ticks >= ticks + 2, what="the clock past the deadline")

        path = asyncio.run(_notifier(tmp_path, settings, lambda seq: bool(taken), scenario))
    assert len(modem.messages) == 1 and "烟雾报警" in modem.messages[0].text
    sent = events(path, "notify.sms_sent")
    assert len(sent) == 1 and sent[0].body["since_detection_ms"] >= 1000, "waited for the cloud first"


def test_the_sms_cap_holds_a_flapping_input_but_not_the_first_smoke(tmp_path):
    with pty_pair() as (ours, theirs), ModemSimulator(theirs) as modem:
        settings = _settings(ours, cloud_confirm_s=0.1, sms_per_hour=2)

        async def scenario(notifier):
            for n in range(4):
                notifier.alarm(_alarm(AlarmKind.INTRUSION, n))
            await until(lambda: len(events(tmp_path / "journal.db", "notify.sms_capped")) == 2, what="two capped")
            notifier.alarm(_alarm(AlarmKind.SMOKE, 9))
            await until(lambda: any("烟雾报警" in m.text for m in modem.messages), what="the smoke SMS over the cap")

        path = asyncio.run(_notifier(tmp_path, settings, lambda seq: False, scenario))
    assert [m.text[m.text.index("】") + 1:][:4] for m in modem.messages] == ["入侵报警", "入侵报警", "烟雾报警"]
    capped = events(path, "notify.sms_capped")
    assert [e.body["incident"] for e in capped] == ["alarm-intrusion-2", "alarm-intrusion-3"]


def test_an_sms_never_confirmed_by_a_delivery_report_is_a_journaled_failure(tmp_path):
    with pty_pair() as (ours, theirs), ModemSimulator(theirs, reports=False) as modem:
        settings = _settings(ours, cloud_confirm_s=0.1, delivery_within_s=1)

        async def scenario(notifier):
            notifier.alarm(_alarm(AlarmKind.SMOKE, 1))
            await until(lambda: events(tmp_path / "journal.db", "fault.sms_failed"), what="the unconfirmed SMS")

        path = asyncio.run(_notifier(tmp_path, settings, lambda seq: False, scenario))
    assert modem.messages, "it went out"
    failed = events(path, "fault.sms_failed")
    assert failed[0].priority.name == "ALARM" and "no delivery report within 1 s" in failed[0].body["errors"][0]
    assert not events(path, "notify.sms_delivered")


def test_a_modem_that_prompts_and_never_confirms_does_not_hold_up_the_escalation(tmp_path):
    """The warden's SMS fails attempt after attempt; the fire station, told on escalation, gets its
    first attempt before the warden's last: retries wait aside, not in front of the modem."""
    warden, station = "+8613800000001", "+8613800000119"
    with pty_pair() as (ours, theirs), ModemSimulator(theirs, mode=Mode.UNCONFIRMED) as modem:
        settings = CommunitySafety.model_validate({
            "contacts": [{"name": "warden", "role": "landlord", "phone": warden, "channels": ["sms"]},
                         {"name": "fire-station", "role": "micro_fire_station", "phone": station, "channels": ["sms"]}],
            "routes": [{"name": "first", "alarms": ["smoke"], "notify": ["warden"], "ack_within_s": 0.5, "escalate_to": "station"},
                       {"name": "station", "notify": ["fire-station"]}],
            "modem": {"port": ours, "timeout_s": 0.5, "retries": 3},
        })

        async def scenario(notifier):
            notifier.alarm(_alarm(AlarmKind.SMOKE, 1))
            await until(lambda: len(events(tmp_path / "journal.db", "fault.sms_failed")) == 2, timeout_s=60, what="both recipients failed")

        path = asyncio.run(_notifier(tmp_path, settings, lambda seq: False, scenario))
    assert modem.submitted.count(warden) == 3 and modem.submitted.count(station) == 3, "every attempt reached the modem"
    last_warden = len(modem.submitted) - 1 - modem.submitted[::-1].index(warden)
    assert modem.submitted.index(station) < last_warden, f"the station waited for the warden's retries: {modem.submitted}"
    failed = {e.body["recipient"]: e.body for e in events(path, "fault.sms_failed")}
    assert failed["warden"]["attempts"] == 3 and all("within 0.5 s" in error for error in failed["warden"]["errors"])
    assert [e.body["recipient"] for e in events(path, "notify.sent")] == ["warden", "fire-station"]
