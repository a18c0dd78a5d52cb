"""`edge run` as a subprocess with community safety: smoke notified through a real mosquitto to the
reference cloud, escalated when nobody acknowledges, acknowledged by a signed cloud command; then
the broker killed, and the next alarm goes out by SMS through the simulated modem on a pty pair."""

from __future__ import annotations

import asyncio
import time

from edge.config.building import load
from edge.hil.broker import Broker
from edge.hil.cloud import generate_keys
from edge.hil.modbus_sim import FieldSimulator
from edge.hil.modem_sim import ModemSimulator
from edge.hil.pty import pty_pair

from community_rig import community_config, devices, events, until
from conftest import Daemon, merged
from uplink_rig import open_cloud, uplink_section

B = "test-house"


def test_smoke_notified_through_the_cloud_escalated_acknowledged_and_by_sms_once_the_broker_is_gone(write_config, building_dir):
    generate_keys(building_dir)
    sim = devices()
    measured: dict[str, float] = {}

    async def scenario(modem_port: str, modem: ModemSimulator):
        simulator = FieldSimulator(list(sim.values()))
        modbus_port = await simulator.start_tcp()
        with Broker() as broker:
            config_path = write_config(merged(community_config(modbus_port, modem_port), uplink_section(broker.port)))
            config = load(config_path)
            cloud = open_cloud(building_dir, broker.port)
            await cloud.start()
            daemon = Daemon(config_path, log=building_dir / "daemon.log").start()
            try:
                await until(lambda: cloud.book(B).status.get("state") == "online", timeout_s=30, what="the gateway online")
                await until(lambda: events(config.journal_path, "fault.modem"), timeout_s=30, what="the modem checked")

                # 1. uplink up: the cloud gets the notifications, nobody acknowledges, it escalates
                started = time.monotonic()
                sim["room"].set_value("alarm", True)
                await until(lambda: any(e["kind"] == "notify.sent" for e in cloud.events(B)), timeout_s=30, what="a notification in the cloud")
                measured["uplink_up_detection_to_cloud_s"] = time.monotonic() - started
                await until(lambda: any(e["kind"] == "notify.escalated" for e in cloud.events(B)), timeout_s=30, what="the escalation in the cloud")
                incident = next(e for e in cloud.events(B) if e["kind"] == "alarm.smoke")["id"]
                result = await cloud.command(B, "alarm.ack", {"incident": incident, "operator": "duty-officer-3"})
                assert result["outcome"] == "done", result
                await until(lambda: any(e["kind"] == "notify.acknowledged" for e in cloud.events(B)), timeout_s=30, what="the acknowledgement")
                # the cloud took each notification well within cloud_confirm_s: no SMS
                sent = [e for e in cloud.events(B) if e["kind"] == "notify.sent"]
                assert not modem.messages, [m.text for m in modem.messages]

                # 2. uplink down: the next alarm goes by SMS
                broker.stop()
                await until(lambda: events(config.journal_path, "fault.uplink_down"), timeout_s=30, what="the uplink seen down")
                started = time.monotonic()
                sim["io"].set_value("input_1", True)  # panic in unit 301
                await until(lambda: any(m.number == "+8613800000001" for m in modem.messages), timeout_s=30, what="the landlord's SMS")
                measured["uplink_down_detection_to_sms_s"] = next(m.at for m in modem.messages if m.number == "+8613800000001") - started
                assert daemon.stop(timeout_s=15) == 0
            finally:
                daemon.kill()
                await cloud.stop()
                await simulator.stop()
        return config, sent, incident

    with pty_pair() as (gateway_end, modem_end), ModemSimulator(modem_end) as modem:
        config, sent, incident = asyncio.run(scenario(gateway_end, modem))
    assert {(e["body"]["route"], e["body"]["recipient"]) for e in sent} >= {("first", "landlord"), ("first", "tenant"), ("station", "micro-fire-station")}
    acked = events(config.journal_path, "notify.acknowledged")
    assert acked[0].body["incident"] == incident and acked[0].body["operator"] == "duty-officer-3"
    assert any(e.body.get("command") == "alarm.ack" for e in events(config.journal_path, "command.executed"))
    panic_sms = [m for m in modem.messages if "紧急求助" in m.text]
    assert panic_sms and panic_sms[0].number == "+8613800000001"
    print(f"\ndaemon: uplink up, detection to the cloud {measured['uplink_up_detection_to_cloud_s']:.2f} s; "
          f"uplink down, detection to SMS {measured['uplink_down_detection_to_sms_s']:.2f} s; "
          f"notify.sent since_detection_ms {[e['body']['since_detection_ms'] for e in sent]}, "
          f"ack at {acked[0].body['since_detection_ms']} ms")
