"""Community safety in process, through Gateway.assemble: pymodbus devices, a socat pty modem, no uplink."""

from __future__ import annotations

import asyncio
import time

from edge import config as building_config
from edge.control import ask, socket_path
from edge.gateway import Gateway
from hil.modbus_sim import FieldSimulator
from hil.modem_sim import Mode, ModemSimulator
from hil.pty import pty_pair

from community_rig import community_config, devices, events, until

SMOKE_TIMES: dict[str, float] = {}


async def _run(config_path, scenario):
    config = building_config.load(config_path)
    gateway = Gateway(config, config_path)
    running = asyncio.create_task(gateway.run())
    try:
        await until(lambda: gateway.journal is not None and events(config.journal_path, "gateway.started"), what="gateway start")
        await scenario(config, gateway)
    finally:
        gateway.stopping.set()
        await asyncio.wait_for(running, 10)
    return config


def test_smoke_with_the_uplink_down_goes_by_sms_within_30_s_and_escalates_until_acknowledged(write_config):
    sim = devices()

    async def main(modem_port: str, modem: ModemSimulator):
        simulator = FieldSimulator(list(sim.values()))
        port = await simulator.start_tcp()

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

        try:
            return await _run(write_config(community_config(port, modem_port)), scenario)
        finally:
            await simulator.stop()

    with pty_pair() as (gateway_end, modem_end), ModemSimulator(modem_end) as modem:
        config = asyncio.run(main(gateway_end, modem))
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
