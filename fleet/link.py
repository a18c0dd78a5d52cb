"""paho-mqtt for the fleet: one MQTT 5 session on paho's own thread, messages handed over through a
bounded queue, every wait with a deadline.

The ingest worker asks for manual acknowledgement (paho's `manual_ack`): a message is acknowledged
(PUBACK) only when the worker says so, after its COMMIT. With a session that outlives the connection
(`session_expiry_s`) the broker keeps what was not acknowledged and sends it again when the same client
id comes back, and the MQTT 5 Receive Maximum bounds how many unacknowledged messages it sends at all,
so the queue here can never overflow by protocol. A message arrives tagged with the connection it came
on: an acknowledgement meant for an earlier connection is not sent (the broker sends that message again,
and the store drops the duplicate).
"""

from __future__ import annotations

import queue
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.fleet.store import Incoming


@dataclass(frozen=True)
class BrokerOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca: Path | None = None  # TLS when set, the broker's certificate verified
    cert: Path | None = None
    key: Path | None = None
    keepalive_s: int = 30

    @classmethod
    def parse(cls, address: str, **kwargs) -> "BrokerOptions":
        host, _, port = address.rpartition(":")
        return cls(host=host or "127.0.0.1", port=int(port), **kwargs)


class LinkError(ConnectionError):
    pass


class Link:
    """One MQTT 5 client. `messages` holds what arrived (bounded); `ack(tag)` when manual_ack."""

    def __init__(
        self, options: BrokerOptions, client_id: str, *, subscriptions: tuple[str, ...] = (), manual_ack: bool = False,
        session_expiry_s: int = 0, receive_maximum: int = 1000, queue_size: int | None = None,
        max_message_bytes: int | None = None, on_message: Callable[[Incoming], bool] | None = None,
    ) -> None:
        self.options = options
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.manual_ack = manual_ack
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.max_message_bytes = max_message_bytes
        self.messages: queue.Queue[Incoming] = queue.Queue(queue_size or receive_maximum + 64)
        self.on_message = on_message  # returns True when it took the message itself
        self.generation = 0  # connections made so far; a message's tag names the one it came on
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.overflows = 0
        self._lock = threading.Lock()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                             manual_ack=manual_ack)
        client.max_inflight_messages_set(64)
        client.max_queued_messages_set(10_000)
        client.reconnect_delay_set(0.2, 5)
        if options.username is not None:
            client.username_pw_set(options.username, options.password)
        if options.ca is not None:
            client.tls_set(ca_certs=str(options.ca), certfile=str(options.cert) if options.cert else None,
                           keyfile=str(options.key) if options.key else None, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda *a: self.subscribed.set()
        self.client = client

    def start(self, timeout_s: float = 10.0) -> "Link":
        """Connect (paho reconnects by itself after a loss, resuming the session) and wait for the subscriptions."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.session_expiry_s
        properties.ReceiveMaximum = self.receive_maximum
        self.client.connect_timeout = timeout_s
        self.client.connect_async(self.options.host, self.options.port, self.options.keepalive_s,
                                  clean_start=self.session_expiry_s == 0, properties=properties)
        self.client.loop_start()
        if not self.connected.wait(timeout_s) or (self.subscriptions and not self.subscribed.wait(timeout_s)):
            self.close()
            raise LinkError(f"no MQTT session with {self.options.host}:{self.options.port} within {timeout_s} s")
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, timeout_s: float = 10.0, response_topic: str | None = None,
                correlation: bytes | None = None, retain: bool = False) -> None:
        """QoS 1; returns when the broker acknowledged (raises LinkError past `timeout_s`)."""
        properties = None
        if response_topic or correlation:
            properties = Properties(PacketTypes.PUBLISH)
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation:
                properties.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        try:
            info.wait_for_publish(timeout_s)
        except (ValueError, RuntimeError) as error:
            raise LinkError(f"publish to {topic} failed: {error}") from None
        if not info.is_published():
            raise LinkError(f"publish to {topic} not acknowledged within {timeout_s} s")

    def get(self, timeout_s: float) -> Incoming | None:
        try:
            return self.messages.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None

    def ack(self, tag: tuple[int, int, int]) -> bool:
        """Acknowledge a message received with manual_ack; False (nothing sent) if it came on an earlier connection."""
        generation, mid, qos = tag
        with self._lock:
            if generation != self.generation or qos == 0:
                return False
            self.client.ack(mid, qos)
        return True

    # --- paho's thread --------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        with self._lock:
            self.generation += 1
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()

    def _on_message(self, client, userdata, message) -> None:
        payload = message.payload
        oversized = self.max_message_bytes is not None and len(payload) > self.max_message_bytes
        props = getattr(message, "properties", None)
        incoming = Incoming(message.topic, payload, (self.generation, message.mid, message.qos), oversized,
                            getattr(props, "CorrelationData", None))
        if self.on_message is not None and self.on_message(incoming):
            return
        try:
            self.messages.put(incoming, timeout=10.0)
        except queue.Full:
            # cannot happen while the broker keeps to our Receive Maximum; if it does not, drop the
            # connection unacknowledged: the broker sends these again on the next one
            self.overflows += 1
            client.disconnect()
