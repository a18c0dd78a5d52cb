"""Benchmark: draining a journal backlog over MQTT against raw paho, end-to-end latency, RSS.

Prints one JSON object. Against a local mosquitto started here: raw paho QoS 1 publishing
one 200-byte message per event (the per-message baseline, same run); the uplink draining a
backlog of the same number of events journaled while the broker was down (batching is
what makes it faster); latency from journal commit to the reference cloud's receipt with
the link idle; the process's RSS before the outage and after the drain; how long the
uplink takes to stop when cancelled after the drain (a stop that takes more than
`STOP_DEADLINE_S` fails the run, naming what did not stop, instead of hanging it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import structlog
from cryptography.hazmat.primitives import serialization

from edge.config.building import load
from edge.events import Event, Priority
from edge.journal import Journal, JournalLimits
from edge.uplink.worker import Uplink
from edge.hil.bench.stats import percentile
from edge.hil.broker import Broker
from edge.hil.cloud import Cloud, generate_keys
from edge.hil.waiting import until

BODY = {"point": "phase_a_current", "value": 12.345, "unit": "A", "pad": "x" * 60}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


STOP_DEADLINE_S = 15.0
RAW_QUEUE = 1_000  # publishes handed to paho and not yet acknowledged: keeps its 64 in flight fed; ids are 16-bit


def raw_paho_rate(port: int, count: int) -> float:
    """One QoS 1 message per event, as fast as paho goes.

    paho numbers messages 1..65535 and keys its queue by that id: with more than 65,535
    unacknowledged publishes queued, later ones overwrite earlier ones and their PUBACKs
    never come (a 100,000-message baseline used to hang here). So the queue is bounded.
    """
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(64)
    client.max_queued_messages_set(0)
    room = threading.Semaphore(RAW_QUEUE)
    client.on_publish = lambda *args: room.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = b"x" * 200
    started = time.perf_counter()
    for _ in range(count):
        room.acquire()
        client.publish("bench/raw", payload, qos=1)
    for _ in range(RAW_QUEUE):
        room.acquire()
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return count / elapsed


async def uplink_run(broker: Broker, workdir: Path, count: int, samples: int) -> dict:
    generate_keys(workdir)
    (workdir / "building.key").write_text("k" * 64)
    config_path = workdir / "building.yaml"
    config_path.write_text(
        f"building: {{id: bench, secret: {{file: building.key}}}}\nstate_dir: state\n"
        f"uplink: {{enabled: true, host: 127.0.0.1, port: {broker.port}, cloud_public_key: cloud.pub, batch_ms: 5}}\n"
    )
    config = load(config_path)
    journal = await Journal.open(config.journal_path, JournalLimits(telemetry_retention_s=None, cap_bytes=10**12))
    uplink = Uplink(config, "bench", journal, lambda: None)
    key = serialization.load_pem_private_key((workdir / "cloud.key").read_bytes(), None)
    cloud = Cloud("127.0.0.1", broker.port, workdir / "cloud.db", key)
    await cloud.start()
    task = asyncio.create_task(uplink.run())
    await until(uplink.connected.is_set, 10, "first connection", every_s=0.005)

    latencies: list[float] = []
    committed: dict[str, int] = {}
    cloud.on_events = lambda events, now: latencies.extend(
        (time.perf_counter_ns() - committed[e["id"]]) / 1e6 for e in events if e["id"] in committed
    )
    for n in range(samples):
        event = Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="m", body=dict(BODY, n=n))
        await journal.append(event)
        committed[event.id] = time.perf_counter_ns()
        await asyncio.sleep(0.01)
    await until(lambda: len(latencies) >= samples, 30, "latency samples at the cloud", every_s=0.005)
    cloud.on_events = None
    await cloud.stop()  # the drain is measured to the broker, as the raw baseline is
    rss_before = _rss_mb()

    broker.stop()  # the outage: a backlog builds up in the journal
    await until(lambda: not uplink.connected.is_set(), 10, "outage noticed", every_s=0.005)
    for start in range(0, count, 5000):
        await asyncio.gather(*(journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="m", body=dict(BODY, n=n)))
                               for n in range(start, min(count, start + 5000))))
    broker.start()
    await until(uplink.connected.is_set, 30, "reconnection after the outage", every_s=0.005)
    started = time.perf_counter()
    await until(lambda: uplink.pusher.synced_seq >= journal.head_seq, 600,
                lambda: f"drain (synced {uplink.pusher.synced_seq} of {journal.head_seq}, {uplink.pusher.stats})", every_s=0.005)
    drain_s = time.perf_counter() - started
    rss_after = _rss_mb()
    stopping = time.perf_counter()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=STOP_DEADLINE_S)
    if not done:
        running = sorted(t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task())
        raise TimeoutError(f"benchmark: the uplink did not stop within {STOP_DEADLINE_S} s of a cancel; running: {running}")
    stop_ms = (time.perf_counter() - stopping) * 1000
    uplink.close()
    await journal.close()
    latencies.sort()
    return {
        "drain_events_per_s": round(count / drain_s),
        "e2e_p50_ms": round(percentile(latencies, 50), 2),
        "e2e_p99_ms": round(percentile(latencies, 99), 2),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_growth_mb": round(rss_after - rss_before, 1),
        "stop_ms": round(stop_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.bench.uplink", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=300, help="events for the latency measurement")
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout is the JSON only
    with tempfile.TemporaryDirectory(prefix="edge-bench-uplink-") as tmp, Broker() as broker:
        raw = raw_paho_rate(broker.port, args.events)
        result = asyncio.run(uplink_run(broker, Path(tmp), args.events, args.samples))
    print(json.dumps({
        "events": args.events,
        "drain_events_per_s": result["drain_events_per_s"],
        "raw_paho_msgs_per_s": round(raw),
        "drain_ratio": round(result["drain_events_per_s"] / raw, 2),
        "e2e_p50_ms": result["e2e_p50_ms"],
        "e2e_p99_ms": result["e2e_p99_ms"],
        "rss_before_mb": result["rss_before_mb"],
        "rss_after_mb": result["rss_after_mb"],
        "rss_growth_mb": result["rss_growth_mb"],
        "stop_ms": result["stop_ms"],
    }))


if __name__ == "__main__":
    main()
