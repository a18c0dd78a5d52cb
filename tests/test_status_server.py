"""The daemon's status server over HTTP, while a simulated building runs: health, metrics, the page's stream."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from conftest import Daemon
from status_rig import TENANT, Site, Stream, fetch, until

pytestmark = pytest.mark.timeout(120)


def _metric(text: str, name: str, **labels: str) -> float | None:
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_health_metrics_and_the_page_stream_follow_the_building(write_config):
    async def scenario():
        async with Site(write_config) as site:
            await site.start()
            assert site.url.startswith("http://127.0.0.1:"), "bound to localhost by default"

            async def healthy():
                status, _ = await site.get("/healthz")
                return status == 200
            await until(healthy, 20, "healthz 200 with every device and reader online")
            status, text = await site.get("/healthz")
            body = json.loads(text)
            assert body["ok"] and body["problems"] == [] and body["devices"] == {"doors-io": True, "f1-c1-monitor": True}

            async with Stream(site.url) as stream:
                await until(lambda: stream.of("state"), 10, "the stream's first state")
                first = stream.of("state")[0]
                assert [d["state"] for d in first["doors"]] == ["locked"]
                site.reader.present(TENANT, repeats=2)
                await until(lambda: any(e["kind"] == "access.decision" for e in stream.of("journal")), 10, "the tap on the stream")
                decision = next(e for e in stream.of("journal") if e["kind"] == "access.decision")
                assert decision["body"]["reason"] == "granted" and decision["body"]["door"] == "front"
                await until(lambda: any(s["doors"][0]["state"] == "released" for s in stream.of("state")), 10, "the door released")
                site.monitor.set_value("current_a", 35.0)  # an over-current alarm on phase A
                await until(lambda: any(e["kind"] == "alarm.raised" for e in stream.of("journal")), 10, "the alarm on the stream")
                await until(lambda: any(a["source"] == "f1-c1" for a in stream.of("state")[-1]["alarms"]), 10, "the alarm active")
                assert any(r["owner"] == "f1-c1" for r in stream.of("reading")), "telemetry moves the charts"

            status, metrics = await site.get("/metrics")
            assert status == 200
            assert _metric(metrics, "edge_access_decisions_total", reason="granted") == 1.0
            assert _metric(metrics, "edge_device_online", device="doors-io") == 1.0
            assert _metric(metrics, "edge_device_polls_total", device="doors-io") > 0
            assert _metric(metrics, "edge_device_errors_total", device="doors-io", kind="timeout") == 0.0
            assert _metric(metrics, "edge_device_last_success_age_seconds", device="f1-c1-monitor") is not None
            assert _metric(metrics, "edge_reader_online", reader="front-reader") == 1.0
            alarm_series = [line for line in metrics.splitlines() if line.startswith("edge_alarms_active{")]
            assert any('kind="alarm.raised"' in line and line.endswith(" 1.0") for line in alarm_series), alarm_series
            assert _metric(metrics, "edge_journal_head_seq") > 0
            assert _metric(metrics, "edge_journal_bytes") > 0
            assert _metric(metrics, "process_resident_memory_bytes") > 0
            assert _metric(metrics, "edge_process_resident_memory_bytes") > 0

            status, text = await site.get("/api/history?hours=1")
            assert status == 200 and "f1-c1-monitor.current_a" in json.loads(text)["f1-c1"]

            await site.simulator.stop()  # every Modbus device goes silent
            await until(lambda: _unhealthy(site), 30, "healthz 503 naming the offline devices")
            status, text = await site.get("/healthz")
            assert status == 503
            assert "device doors-io offline" in json.loads(text)["problems"]
            assert await site.stop() == 0
            assert not (site.config.state_path / "http.json").exists(), "a stopped daemon leaves no address behind"

    asyncio.run(scenario())


async def _unhealthy(site: Site) -> bool:
    status, text = await site.get("/healthz")
    return status == 503 and "device doors-io offline" in json.loads(text)["problems"]


def test_beyond_localhost_every_request_needs_the_token(write_config, building_dir):
    (building_dir / "secrets" / "status.token").write_text("s3cret-token-for-the-tunnel\n")
    http = {"bind": "0.0.0.0", "port": 0, "beyond_localhost": True, "token": {"file": "secrets/status.token"}}

    async def scenario():
        async with Site(write_config, http=http) as site:
            await site.start()
            for path in ("/", "/healthz", "/metrics", "/api/status", "/api/stream"):
                status, text = await site.get(path)
                assert (status, text) == (401, ""), f"{path} without the token"
            assert (await site.get("/metrics", headers={"Authorization": "Bearer s3cret-token-for-the-tunneX"}))[0] == 401
            assert (await site.get("/metrics", headers={"Authorization": "Bearer s3cret-token-for-the-tunnel"}))[0] == 200
            basic = base64.b64encode(b"technician:s3cret-token-for-the-tunnel").decode()
            status, text = await site.get("/", headers={"Authorization": f"Basic {basic}"})
            assert status == 200 and "<title>Building status</title>" in text
            assert await site.stop() == 0

    asyncio.run(scenario())


def test_metrics_and_status_follow_the_uplink_and_its_backlog(write_config, building_dir):
    from edge.hil.broker import Broker
    from uplink_rig import uplink_config

    async def scenario():
        with Broker() as broker:
            path = uplink_config(write_config, building_dir, broker.port)  # its page on a free port (conftest)
            daemon = Daemon(path).start()
            try:
                endpoint = building_dir / "state" / "http.json"
                await until(lambda: endpoint.exists(), 20, "the status server")
                url = json.loads(endpoint.read_text())["url"]

                async def connected():
                    _, metrics = await fetch(url, "/metrics")
                    return _metric(metrics, "edge_uplink_connected") == 1.0 and _metric(metrics, "edge_journal_unsynced_events") == 0.0
                await until(connected, 20, "the uplink connected with nothing left to send")
                _, text = await fetch(url, "/api/status")
                assert json.loads(text)["uplink"] | {"connected": True, "backlog": 0} == json.loads(text)["uplink"]
                broker.stop()  # the broker goes away: the link is down

                async def down():
                    _, metrics = await fetch(url, "/metrics")
                    return _metric(metrics, "edge_uplink_connected") == 0.0
                await until(down, 30, "the uplink seen down")
                assert await asyncio.to_thread(daemon.stop, timeout_s=10) == 0
            finally:
                daemon.kill()

    asyncio.run(scenario())
