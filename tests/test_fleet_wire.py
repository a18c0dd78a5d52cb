"""The wire as a real `edge run` gateway speaks it, checked against the generated contract: alarm-priority
events on the alarm lane, a last will that carries its time, one JSON spacing on every topic."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from edge.uplink import wire
from edge.fleet.contract import document
from edge.fleet.link import BrokerOptions, Link
from edge.hil.broker import Broker

from fleet_rig import cloud_keys, prepared, until  # noqa: F401 - fixtures


def _validator(schema_name: str) -> Draft202012Validator:
    doc = document()
    registry = Registry().with_resource("urn:uplink", Resource.opaque(doc))
    return Draft202012Validator({"$ref": f"urn:uplink#/components/schemas/{schema_name}"}, registry=registry)


def test_a_gateway_speaks_the_contract_alarms_on_their_lane_compact_json_and_a_will_with_its_time(tmp_path, cloud_keys):
    private, public = cloud_keys
    with Broker() as broker:
        # a batch cap above what the alarm lane reads at once (256 alarms): the backlog must still not carry alarms
        (gateway,) = prepared(tmp_path, broker.port, public, 4000, "w1", batch_bytes=4194304, batch_events=5000)
        link = Link(BrokerOptions(port=broker.port), "wire-watcher", subscriptions=("edge/v1/+/#",), queue_size=100_000).start()
        seen: list = []
        try:
            gateway.start()

            def collect(until_s: float = 0.2) -> None:
                while (message := link.get(until_s)) is not None:
                    seen.append(message)

            def events_seen() -> int:
                collect()
                return sum(len(json.loads(m.payload).get("events", [])) for m in seen if m.topic.endswith("/events"))

            until(lambda: events_seen() >= 4000, 60, what="the backlog drained")
            done = subprocess.run([sys.executable, "-m", "edge.fleet.cli", "--broker", f"127.0.0.1:{broker.port}", "--key", str(private),
                                   "command", "w1", "status.snapshot"], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            births = [json.loads(m.payload) for m in seen if m.topic.endswith("/status")]
            gateway.stop(signal.SIGKILL)  # no goodbye: the broker sends the will

            def will_sent() -> bool:
                collect(0.5)
                return any(m.topic.endswith("/status") and b'"offline"' in m.payload for m in seen)

            until(will_sent, 30, what="the broker's will: offline")
        finally:
            gateway.stop()
            link.close()
        collect(0.5)

    by_topic: dict[str, list] = {}
    for m in seen:
        by_topic.setdefault(m.topic.split("/", 3)[3], []).append(m.payload)
    assert {"status", "events", "commands/result"} <= set(by_topic)
    # one spacing everywhere: what the gateway sends is exactly its compact encoding
    for leaf, payloads in by_topic.items():
        for payload in payloads:
            assert wire.encode(json.loads(payload)).encode() == payload, leaf
    # the contract holds for each message
    schema_of = {"status": "Status", "events": "EventBatch", "commands/result": "CommandResult"}
    for leaf, name in schema_of.items():
        validator = _validator(name)
        for payload in by_topic[leaf]:
            errors = [e.message for e in validator.iter_errors(json.loads(payload))]
            assert not errors, (leaf, errors[:3])
    # alarm-priority events on the alarm lane, and nowhere else
    batches = [json.loads(p) for p in by_topic["events"]]
    lanes = {(b["lane"], e["priority"] == "alarm") for b in batches for e in b["events"]}
    assert ("backlog", True) not in lanes and ("alarm", True) in lanes
    # the birth says when its session began; the will carries that time
    online = [b for b in births if b["state"] == "online"]
    offline = [json.loads(p) for p in by_topic["status"] if json.loads(p)["state"] == "offline"]
    assert online and offline
    assert offline[-1]["time"] == online[-1]["since"]
