"""paho-mqtt behind a small asyncio face (the shape of aiomqtt): no callbacks leak out.

One `Connection` is one MQTT session. paho runs its network loop in its own thread;
every callback hops onto the asyncio loop with `call_soon_threadsafe`, where it settles
a future (a PUBACK, a SUBACK, the CONNACK) or queues a message. A lost connection fails
every unsettled publish at once and sets `lost`; the caller then closes this session and
opens a fresh one, so paho never replays its own queue behind our back (what is resent
after a reconnect is decided by the sync cursor, from the journal).

Incoming messages are bounded twice: in count and bytes queued (`INCOMING_QUEUE`,
`INCOMING_BYTES`), and each by `BrokerSettings.max_incoming_bytes`, which an MQTT 5 broker
is told in the CONNECT (Maximum Packet Size: it then never sends a larger one) and which
is checked again on arrival, before anything is queued. A message dropped for either reason
is reported to `on_drop` (topic, reason), never silently, and never blocks paho's thread.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Callable

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.runtime import pools
from edge.runtime.pools import Pool

INCOMING_QUEUE = 256
INCOMING_BYTES = 16 * 2**20  # payload bytes queued and not yet read
PACKET_ROOM = 4096  # a PUBLISH packet's header, topic and properties, beside its payload
MAX_UNACKED = 60_000  # paho's message ids are 16-bit: past 65,535 unacknowledged, new ones overwrite old ones


class ConnectionLost(ConnectionError):
    """The session ended before the broker acknowledged."""


class PublishRefused(ConnectionLost):
    """The broker answered a publish with a failure reason code (MQTT 5 PUBACK)."""


class Drop(StrEnum):
    """Why a received message was dropped before anyone read it."""

    QUEUE_FULL = "queue_full"
    TOO_LARGE = "too_large"


OnDrop = Callable[[str, Drop], None]


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where and how to connect; secrets already read from their files."""

    host: str
    port: int
    client_id: str
    protocol: str = "5"  # "5" or "3.1.1"
    keepalive_s: int = 30
    username: str | None = None
    password: bytes | None = None
    ca: Path | None = None  # TLS when set; the server certificate and host name are always verified
    cert: Path | None = None
    key: Path | None = None
    max_inflight: int = 64
    max_incoming_bytes: int | None = None  # payload; larger messages are dropped (and on MQTT 5 never sent)


@dataclass(frozen=True, slots=True)
class Message:
    """A received message; `response_topic`/`correlation` are MQTT 5's request/response fields."""

    topic: str
    payload: bytes
    response_topic: str | None = None
    correlation: bytes | None = None


class Connection:
    """One session with the broker. `await Connection.open(...)`, then `publish` and `receive`."""

    def __init__(
        self, settings: BrokerSettings, will: Will | None, incoming: int = INCOMING_QUEUE,
        incoming_bytes: int = INCOMING_BYTES, on_drop: OnDrop | None = None,
    ) -> None:
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        self._messages: asyncio.Queue[Message] = asyncio.Queue(incoming)
        self._queued_bytes = 0
        self._incoming_bytes = incoming_bytes
        self._on_drop = on_drop
        self.dropped = 0  # messages never queued: the queue was full, or one was too large
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self.max_packet_bytes: int | None = None  # the broker's Maximum Packet Size (MQTT 5 CONNACK), if it says one
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._connected: asyncio.Future[None] = self._loop.create_future()
        v5 = settings.protocol == "5"
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(3600, 3600)  # reconnecting is ours to decide, with a fresh session
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password.decode() if settings.password else None)
        if settings.ca is not None:
            client.tls_set(
                ca_certs=str(settings.ca),
                certfile=str(settings.cert) if settings.cert else None,
                keyfile=str(settings.key) if settings.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(False)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._v5 = v5

    @classmethod
    async def open(
        cls, settings: BrokerSettings, will: Will | None = None, timeout_s: float = 10.0, incoming: int = INCOMING_QUEUE,
        incoming_bytes: int = INCOMING_BYTES, on_drop: OnDrop | None = None,
    ) -> "Connection":
        """Connect and wait for the CONNACK; raises ConnectionError (refused, unreachable, timeout)."""
        connection = cls(settings, will, incoming, incoming_bytes, on_drop)
        client = connection._client
        # connect (TCP and the TLS handshake) here rather than in paho's thread: its failure
        # (a certificate that does not verify, a refused port) reaches the caller with its reason
        client.connect_timeout = timeout_s
        v5 = {"clean_start": True, "properties": connection._connect_properties()} if connection._v5 else {}
        try:
            await pools.call(Pool.NETWORK, client.connect, settings.host, settings.port, settings.keepalive_s, **v5)
            client.loop_start()
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(connection._connected)
        except BaseException as failure:
            await connection.close(graceful=False)
            if isinstance(failure, (TimeoutError, OSError, ssl.SSLError)):
                raise ConnectionError(f"cannot connect to {settings.host}:{settings.port}: {failure!r}") from failure
            raise
        return connection

    def _connect_properties(self) -> Properties | None:
        if self.settings.max_incoming_bytes is None:
            return None
        properties = Properties(PacketTypes.CONNECT)
        properties.MaximumPacketSize = self.settings.max_incoming_bytes + PACKET_ROOM
        return properties

    # --- called on the asyncio loop -------------------------------------------------

    async def receive(self) -> Message:
        """The next message received (in the order the broker sent them)."""
        message = await self._messages.get()
        self._queued_bytes -= len(message.payload)
        return message

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> asyncio.Future[None]:
        """Publish at QoS 1; the future settles when the PUBACK arrives (or fails when the session ends)."""
        done: asyncio.Future[None] = self._loop.create_future()
        if self.lost.is_set():
            done.set_exception(ConnectionLost("not connected"))
            return done
        if len(self._acks) >= MAX_UNACKED:
            done.set_exception(PublishRefused(f"{MAX_UNACKED} publishes unacknowledged: the session is stuck"))
            return done
        properties = None
        if self._v5 and (response_topic or correlation):
            properties = Properties(PacketTypes.PUBLISH)
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation:
                properties.CorrelationData = correlation
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            done.set_exception(ConnectionLost(paho.error_string(info.rc)))
            return done
        self._acks[info.mid] = done
        return done

    async def subscribe(self, topics: tuple[str, ...], timeout_s: float = 10.0) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK (ConnectionLost if none comes in `timeout_s`)."""
        done: asyncio.Future[None] = self._loop.create_future()
        rc, mid = self._client.subscribe([(topic, 1) for topic in topics])
        if rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionLost(paho.error_string(rc))
        self._acks[mid] = done
        try:
            async with asyncio.timeout(timeout_s):
                await done
        except TimeoutError:
            raise ConnectionLost(f"no SUBACK within {timeout_s} s") from None

    async def close(self, graceful: bool = True) -> None:
        """End the session: a graceful DISCONNECT suppresses the will; then stop paho's thread."""
        if graceful and not self.lost.is_set():
            self._client.disconnect()
        await pools.call(Pool.NETWORK, self._client.loop_stop)
        self._mark_lost("closed")

    # --- paho's thread: hop onto the loop, nothing else -----------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        limit = getattr(properties, "MaximumPacketSize", None)
        self._loop.call_soon_threadsafe(self._connack, reason_code.is_failure, str(reason_code), limit)

    def _on_connect_fail(self, client, userdata) -> None:
        # paho would wait its reconnect delay; fail this attempt now, the worker's backoff decides
        self._loop.call_soon_threadsafe(self._mark_lost, "connection refused or unreachable")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._loop.call_soon_threadsafe(self._mark_lost, str(reason_code))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._loop.call_soon_threadsafe(self._settle, mid, reason_code.is_failure, str(reason_code))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = any(code.is_failure for code in reason_codes)
        self._loop.call_soon_threadsafe(self._settle, mid, refused, "subscription refused")

    def _on_message(self, client, userdata, message) -> None:
        limit = self.settings.max_incoming_bytes
        if limit is not None and len(message.payload) > limit:
            self._loop.call_soon_threadsafe(self._drop, message.topic, Drop.TOO_LARGE)
            return
        props = getattr(message, "properties", None)
        received = Message(
            topic=message.topic,
            payload=message.payload,
            response_topic=getattr(props, "ResponseTopic", None),
            correlation=getattr(props, "CorrelationData", None),
        )
        self._loop.call_soon_threadsafe(self._deliver, received)

    # --- back on the loop ------------------------------------------------------------

    def _connack(self, refused: bool, reason: str, max_packet_bytes: int | None) -> None:
        if self._connected.done():
            return
        self.max_packet_bytes = max_packet_bytes
        if refused:
            self._connected.set_exception(ConnectionError(f"broker refused the connection: {reason}"))
        else:
            self._connected.set_result(None)

    def _settle(self, mid: int, failed: bool, reason: str) -> None:
        done = self._acks.pop(mid, None)
        if done is None or done.done():
            return
        if failed:
            done.set_exception(PublishRefused(f"broker refused: {reason}"))
        else:
            done.set_result(None)

    def _deliver(self, message: Message) -> None:
        if self._messages.full() or self._queued_bytes + len(message.payload) > self._incoming_bytes:
            self._drop(message.topic, Drop.QUEUE_FULL)
            return
        self._queued_bytes += len(message.payload)
        self._messages.put_nowait(message)

    def _drop(self, topic: str, reason: Drop) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(topic, reason)

    def _mark_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
        self.lost.set()
        if not self._connected.done():
            self._connected.set_exception(ConnectionError(f"connection closed: {reason}"))
            self._connected.exception()
        acks, self._acks = self._acks, {}
        for done in acks.values():
            if not done.done():
                done.set_exception(ConnectionLost(reason))
                done.exception()  # a publisher that stopped listening must not make asyncio warn
