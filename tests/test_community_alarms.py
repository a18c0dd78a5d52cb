"""Community safety in process, through Gateway.assemble: pymodbus devices, a socat pty modem, no uplink."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge.runtime.control import ask, socket_path
from edge.hil.modbus_sim import FieldSimulator
from edge.hil.modem_sim import Mode, ModemSimulator
from edge.hil.pty import pty_pair

from community_rig import community_config, devices, events, gateway_on, until

SMOKE_TIMES: dict[str, float] = {}


def play(write_config, sim, scenario, modem_port: str | None = None, fire_release: bool = False):
    """The devices `sim` served over Modbus TCP, the gateway on the community config for their port
    (the room's smoke detector also releasing a stair exit when `fire_release`), `scenario(config,
    gateway)` played; returns the config."""

    def config_of(port: int):
        config = community_config(port, modem_port)
        if fire_release:
            config["community"]["detectors"][0]["fire_release"] = True  # room-301
            config["doors"] = [{"name": "stair-exit", "lock": {"device": "io", "release": "release_5", "secure": "secure_5"}, "egress": True,
                                "fail": "safe"}]
        return write_config(config)

    async def main():
        return await gateway_on(FieldSimulator(list(sim.values())), config_of, scenario)

    return asyncio.run(main())


def test_smoke_with_the_uplink_down_goes_by_sms_within_30_s_and_escalates_until_acknowledged(write_config):
    sim = devices()


    async def scenario(config, gateway):
        await until(lambda: events(config.journal_path, "fault.modem"), what="the modem checked")
        started = time.monotonic()
        sim["room"].set_value("alarm", True)
        await until(lambda: any(m.number == "+8613800000001" for m in modem.messages), timeout_s=30, what="the landlord's SMS")
        SMOKE_TIMES["detection_to_sms_s"] = next(m.at for m in modem.messages if m.number == "+8613800000001") - started
        await until(lambda: any(m.number == "+8613800000003" for m in modem.messages), timeout_s=30, what="the escalation SMS")
        incident = events(config.journal_path, "alarm.smoke")[0].id
        answer = await asyncio.to_thread(ask, socket_path(config.state_path), {"op": "alarm.ack", "incident": incident, "operator": "guard-7"})
        assert answer["ok"], answer
        # past the point where the next escalation would have come: the clock has judged its deadline
        notifier = gateway.community.notifier
        deadline = max(step.told_at for step in notifier.incidents[incident].steps) + 2.0
        await until(lambda: time.monotonic() > deadline + 0.5, what="the station's ack window")
        ticks = notifier.ticks
        await until(lambda: notifier.ticks >= ticks + 2, what="the escalation clock after the window")


    with pty_pair() as (gateway_end, modem_end), ModemSimulator(modem_end) as modem:
        config = play(write_config, sim, scenario, modem_port=gateway_end)
    smoke = events(config.journal_path, "alarm.smoke")
    assert len(smoke) == 1 and smoke[0].body["area"] == "unit-301" and smoke[0].priority.name == "ALARM"
    sent = [e.body for e in events(config.journal_path, "notify.sent")]
    assert {(b["route"], b["recipient"]) for b in sent} >= {("first", "landlord"), ("first", "tenant"), ("station", "micro-fire-station")}
    assert all(b["incident"] == smoke[0].id for b in sent)
    escalated = events(config.journal_path, "notify.escalated")
    assert [(e.body["from"], e.body["to"]) for e in escalated] == [("first", "station")], "acknowledged before the command centre"
    sms = events(config.journal_path, "notify.sms_sent")
    assert {e.body["recipient"] for e in sms} == {"landlord", "micro-fire-station"}, "the tenant has the cloud channel only"
    texts = {m.number: m.text for m in modem.messages}
    assert "烟雾报警" in texts["+8613800000001"] and "unit-301" in texts["+8613800000001"]
    acked = events(config.journal_path, "notify.acknowledged")
    assert acked[0].body["operator"] == "guard-7" and acked[0].body["via"] == "command"
    delivered = events(config.journal_path, "notify.sms_delivered")
    assert {e.body["recipient"] for e in delivered} == {"landlord", "micro-fire-station"}
    print(f"\nsmoke, uplink down: detection to SMS at the modem {SMOKE_TIMES['detection_to_sms_s']:.2f} s; "
          f"journaled since_detection_ms: sent {[b['since_detection_ms'] for b in sent]}, "
          f"sms {[e.body['since_detection_ms'] for e in sms]}, ack {acked[0].body['since_detection_ms']}")


def test_smoke_in_the_charging_area_cuts_its_posts_once_reads_back_and_refuses_a_reclose_while_smoky(write_config):
    sim = devices()


    async def scenario(config, gateway):
        await until(lambda: events(config.journal_path, "telemetry.point"), what="first readings")
        started = time.monotonic()
        sim["charging"].set_value("alarm", True)
        await until(lambda: events(config.journal_path, "power.trip_confirmed"), what="the trip confirmed")
        SMOKE_TIMES["smoke_to_breaker_open_s"] = time.monotonic() - started
        assert sim["breaker"].value_of("closed") is False
        refused = await asyncio.to_thread(ask, socket_path(config.state_path), {
            "op": "breaker.close", "circuit": "bike-posts", "operator": "tech-1", "reason": "checked the posts, all fine"})
        assert not refused["ok"] and "held open: smoke in charging area charging-1" in refused["error"]
        sim["charging"].set_value("alarm", False)
        await until(lambda: events(config.journal_path, "alarm.smoke_cleared"), what="the smoke cleared")
        closed = await asyncio.to_thread(ask, socket_path(config.state_path), {
            "op": "breaker.close", "circuit": "bike-posts", "operator": "tech-1", "reason": "smoke gone, posts inspected"})
        assert closed["ok"], closed


    config = play(write_config, sim, scenario)
    smoke = events(config.journal_path, "alarm.smoke")
    assert len(smoke) == 1
    assert smoke[0].body["charging_area"] == "charging-1" and smoke[0].body["power_cut"] == ["bike-posts"]
    sent = events(config.journal_path, "power.trip_sent")
    assert len(sent) == 1 and sent[0].body["reason"] == "smoke" and sent[0].body["breaker"] == "brk"
    confirmed = events(config.journal_path, "power.trip_confirmed")
    assert confirmed[0].body["readback"] == "open"
    refused = events(config.journal_path, "power.reclose_refused")
    assert refused and refused[0].body["operator"] == "tech-1"
    reclosed = events(config.journal_path, "power.reclose_requested")
    assert [e.body["operator"] for e in reclosed] == ["tech-1"], "only the operator's re-close, never the gateway's"
    unrouted = [e for e in events(config.journal_path, "alarm.notification_undelivered") if "no route" in e.body["problem"]]
    assert not unrouted, "the routes cover the charging area"
    assert events(config.journal_path, "notify.sent")
    print(f"\ncharging area: smoke to breaker read back open {SMOKE_TIMES['smoke_to_breaker_open_s']:.2f} s")


def test_alarm_with_fault_is_still_a_smoke_alarm_and_a_test_is_not(write_config):
    sim = devices()


    async def scenario(config, gateway):
        await until(lambda: events(config.journal_path, "telemetry.point"), what="first readings")
        sim["charging"].set_value("test", True)
        sim["charging"].set_value("alarm", True)  # the technician's test button
        await until(lambda: events(config.journal_path, "fault.detector"), what="the test seen")
        sim["room"].set_value("fault", True)
        sim["room"].set_value("alarm", True)
        await until(lambda: events(config.journal_path, "alarm.smoke"), what="the smoke alarm")
        await until(lambda: len(events(config.journal_path, "fault.detector")) >= 3, what="the troubles")


    config = play(write_config, sim, scenario)
    smoke = events(config.journal_path, "alarm.smoke")
    assert [e.source for e in smoke] == ["room-301"], "the charging detector was under test: no fire, no power cut"
    assert "alarm_and_fault" in smoke[0].body["troubles"]
    troubles = {(e.source, e.body["trouble"]): e.priority.name for e in events(config.journal_path, "fault.detector")}
    assert troubles[("bike-shed", "test")] == "FAULT"
    assert troubles[("room-301", "alarm_and_fault")] == "ALARM"
    assert ("room-301", "fault") in troubles
    assert not events(config.journal_path, "power.trip_sent")


def test_a_panic_button_is_notified_and_the_local_button_acknowledges_it(write_config):
    sim = devices()


    async def scenario(config, gateway):
        await until(lambda: events(config.journal_path, "telemetry.point"), what="first readings")
        sim["io"].set_value("input_1", True)
        await until(lambda: events(config.journal_path, "notify.sent"), what="the panic notified")
        # no uplink and no modem: the SMS fallback says it could not go, never silence
        await until(lambda: events(config.journal_path, "alarm.notification_undelivered"), what="the undelivered SMS")
        sim["io"].set_value("input_8", True)
        await until(lambda: events(config.journal_path, "notify.acknowledged"), what="the button's acknowledgement")


    config = play(write_config, sim, scenario)
    panic = events(config.journal_path, "alarm.panic")
    assert len(panic) == 1 and panic[0].body == {"input": "panic-301", "point": "io.input_1", "area": "unit-301"}
    acked = events(config.journal_path, "notify.acknowledged")
    assert acked[0].body["incident"] == panic[0].id and acked[0].body["operator"] == "button:io.input_8" and acked[0].body["via"] == "button"
    undelivered = events(config.journal_path, "alarm.notification_undelivered")
    assert undelivered[0].priority.name == "ALARM" and "no modem" in undelivered[0].body["problem"]


@pytest.mark.parametrize("mode, says", [(Mode.ERROR, "CMS ERROR: 500"), (Mode.NO_NETWORK, "NoNetwork"), (Mode.SILENT, "NoAnswer")])
def test_a_modem_that_refuses_has_no_network_or_says_nothing_makes_the_sms_a_journaled_failure(write_config, mode, says):
    sim = devices()


    async def scenario(config, gateway):
        await until(lambda: events(config.journal_path, "fault.modem"), what="the modem checked")
        modem.mode = mode
        sim["io"].set_value("input_1", True)  # panic
        await until(lambda: any(e.body["recipient"] == "landlord" for e in events(config.journal_path, "fault.sms_failed")),
                    timeout_s=30, what="the failed SMS journaled")


    with pty_pair() as (gateway_end, modem_end), ModemSimulator(modem_end) as modem:
        config = play(write_config, sim, scenario, modem_port=gateway_end)
    failed = [e for e in events(config.journal_path, "fault.sms_failed") if e.body["recipient"] == "landlord"]
    assert failed[0].priority.name == "ALARM" and failed[0].body["attempts"] == 2
    assert says in " ".join(failed[0].body["errors"])
    assert not modem.messages


def test_a_smoke_alarm_configured_for_it_releases_the_egress_doors(write_config):
    sim = devices()


    async def scenario(config, gateway):
        await until(lambda: events(config.journal_path, "telemetry.point"), what="first readings")
        sim["room"].set_value("alarm", True)
        await until(lambda: events(config.journal_path, "alarm.fire_release"), what="the fire release")
        assert sim["io"].value_of("relay_5") is True


    config = play(write_config, sim, scenario, fire_release=True)
    release = events(config.journal_path, "alarm.fire_release")
    assert release[0].body["source"] == "smoke:room-301" and release[0].body["doors"] == ["stair-exit"]
    assert events(config.journal_path, "alarm.smoke")[0].body["fire_release"] is True


def test_a_fire_reset_is_refused_while_a_releasing_smoke_detector_still_reports_smoke(write_config):
    """The smoke detector that released the egress doors holds their reset like the panel's fire
    input does: securing them while the room still reports smoke would lock people in."""
    sim = devices()

    answers = {}

    async def scenario(config, gateway):
        await until(lambda: events(config.journal_path, "telemetry.point"), what="first readings")
        sim["room"].set_value("alarm", True)
        await until(lambda: events(config.journal_path, "alarm.fire_release"), what="the fire release")
        answers["smoky"] = await asyncio.to_thread(ask, socket_path(config.state_path), {"op": "fire.reset", "operator": "tech-7"})
        answers["held"] = sim["io"].value_of("relay_5")
        sim["room"].set_value("alarm", False)
        await until(lambda: events(config.journal_path, "alarm.smoke_cleared"), what="the smoke cleared")  # judged from the clear reading
        answers["clear"] = await asyncio.to_thread(ask, socket_path(config.state_path), {"op": "fire.reset", "operator": "tech-7"})
        await until(lambda: not sim["io"].value_of("relay_5"), what="the egress door secured")


    config = play(write_config, sim, scenario, fire_release=True)
    assert answers["smoky"]["ok"] is False and "smoke detector room-301 (smoke-301.alarm) still reads active" in answers["smoky"]["error"]
    assert answers["held"] is True, "the egress door stayed released"
    refused = events(config.journal_path, "alarm.fire_reset_refused")
    assert [e.body["inputs"] for e in refused] == [["smoke detector room-301 (smoke-301.alarm) still reads active"]]
    assert answers["clear"]["ok"] is True
    assert [e.body["operator"] for e in events(config.journal_path, "alarm.fire_reset")] == ["tech-7"]
