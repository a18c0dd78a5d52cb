"""The uplink worker: one MQTT session at a time, for as long as the gateway runs.

Connect (exponential backoff with jitter between attempts, so a hundred gateways do not
reconnect in step after a broker restart); subscribe to the downlink; publish the retained
birth message (the last will says `offline`); then push, answer and refresh the birth
message until the session is lost, and start over. A clean stop publishes `offline`
itself, because a graceful DISCONNECT suppresses the will.

Every loop here ends when cancelled, and every wait on the way out has a deadline
(`edge.runtime.tasks`): a stop takes at most a few seconds, and says what did not stop. In the
gateway's stop each of those waits is its share of the time the worker has left
(`stop_deadline`, see edge.runtime.deadline), so together they fit the worker's part of the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable

import structlog

from edge.runtime import pools
from edge.doors.credentials.store import CredentialStore
from edge.carryover import open_conditions
from edge.conditions import ActiveConditions
from edge.config.building import BuildingConfig
from edge.config.apply import ConfigApplier
from edge.runtime.deadline import Deadline
from edge.events import Event, Priority
from edge.uplink.bodies import LinkBody
from edge.uplink.kinds import UplinkKind
from edge.journal import Journal
from edge.runtime.pools import Pool
from edge.runtime.supervisor import Backoff
from edge.uplink.commands import CommandTable
from edge.uplink.cursor import SyncCursor
from edge.uplink.downlink import Downlink
from edge.uplink.feature import UplinkCommand
from edge.uplink.mqtt import BrokerSettings, Connection, ConnectionLost, Will
from edge.uplink.push import Batching, Pusher
from edge.uplink.replay import NonceBook
from edge.uplink.signing import MAX_DOWNLINK_BYTES, Verifier, load_public_key
from edge.uplink.snapshots import SnapshotSender
from edge.runtime.tasks import first_to_end
from edge.uplink import wire
from edge.uplink.topics import WIRE_VERSION, Topics
from edge.version import VERSION

log = structlog.get_logger("edge.uplink")

BIRTH_EVERY_S = 60.0
RECONNECT = Backoff(initial_s=0.5, max_s=30.0)
# Deadlines on the way out, one after another (a stop normally takes about a millisecond); in the
# gateway's stop each is scaled to its share of what is left (Deadline.share), so they nest.
SESSION_STOP_S = 2.0  # for the session's loops to end when cancelled
GOODBYE_S = 1.0  # for the `offline` message, and again for paho's thread to stop
REFUSALS_CLOSE_S = 1.0  # for the held-back refusal counts to be journaled
STOP_WITHIN_S = SESSION_STOP_S + 2 * GOODBYE_S + REFUSALS_CLOSE_S  # for the whole worker


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def broker_settings(config: BuildingConfig) -> BrokerSettings:
    uplink = config.uplink
    tls = uplink.tls
    return BrokerSettings(
        host=uplink.host,
        port=uplink.port,
        client_id=uplink.client_id or f"edge-{config.building.id}",
        protocol=uplink.protocol,
        keepalive_s=uplink.keepalive_s,
        username=uplink.username,
        password=uplink.password.read() if uplink.password else None,
        ca=tls.ca if tls else None,
        cert=tls.cert if tls else None,
        key=tls.key if tls else None,
        max_incoming_bytes=MAX_DOWNLINK_BYTES,
    )


class Uplink:
    """The journal to the cloud, the cloud's signed messages to the gateway."""

    def __init__(
        self, config: BuildingConfig, config_digest: str, journal: Journal,
        credentials: Callable[[], CredentialStore | None], commands: CommandTable | None = None,
        state_path: Path | None = None, stop_deadline: Callable[[], Deadline] = Deadline.never,
        before_first_run: Callable[[], Awaitable[None]] | None = None,
        config_apply: ConfigApplier | None = None,
    ) -> None:
        uplink = config.uplink
        self.settings = broker_settings(config)
        self.topics = Topics(uplink.topic_prefix, config.building.id)
        self.config_digest = config_digest
        self.journal = journal
        self._link_up: bool | None = None  # None until the first attempt
        self.credentials = credentials
        self.started = time.monotonic()
        state = state_path or (config.state_path / "uplink.db")
        self.cursor = SyncCursor(state, journal)  # on a refusing disk: in memory, and says so
        self.nonces = NonceBook(state)
        self.commands = commands or CommandTable()
        self.commands.register(UplinkCommand.STATUS_SNAPSHOT, self._status_snapshot)
        self.commands.register(UplinkCommand.STATE, self._state)
        self.config_apply = config_apply  # the fleet's config.apply and config.get (edge/config/apply.py)
        if config_apply is not None:
            self.commands.register(UplinkCommand.CONFIG_GET, config_apply.get)
        self.pusher = Pusher(
            journal, self.cursor, self.topics,
            Batching(uplink.batch_events, uplink.batch_ms / 1000, uplink.batch_bytes, uplink.bandwidth_bytes_per_s),
        )
        self.snapshots = SnapshotSender(
            journal, self.cursor, self.topics, config.state_path, lambda: self.pusher.synced_seq, self.pusher.acked
        )
        key = load_public_key(uplink.cloud_public_key) if uplink.cloud_public_key else None
        self._rebirth = asyncio.Event()
        self.downlink = Downlink(
            Verifier(key, config.building.id, self.nonces), self.topics, journal, credentials, self.commands,
            uplink.batch_bytes, on_credentials=self._rebirth.set, config=config_apply,
        )
        if config_apply is not None:
            config_apply.on_change = self._rebirth.set  # the birth message names the config that runs
        self.connected = asyncio.Event()
        self._resumed = False  # the saved positions are taken up by the first run, never again
        self._before_first_run = before_first_run  # e.g. opening a credential store of its own
        self.stop_deadline = stop_deadline  # the gateway's stop in progress, if any (the supervisor's deadline)
        self._since: str | None = None  # when the current session's attempt began (the will's time)

    async def run(self) -> None:
        """Keep a session up until cancelled (the supervisor's worker); on the way out, journal
        the refusal counts still held back. The state files open first, on their own threads."""
        if not self._resumed:
            if self._before_first_run is not None:
                await self._before_first_run()
            await self.cursor.open()
            if self.config_apply is not None:  # the birth message names the fleet's last config version
                await self.config_apply.start()
            await self.pusher.resume()
            await self.snapshots.resume()
            self._resumed = True
        await self.cursor.report()
        try:
            await first_to_end(
                {"uplink-sessions": self._keep_connected(), "uplink-refusals": self.downlink.refusals.run()},
                lambda: self.stop_deadline().share(STOP_WITHIN_S - REFUSALS_CLOSE_S, REFUSALS_CLOSE_S),
            )
        finally:
            within = self.stop_deadline().share(REFUSALS_CLOSE_S)
            try:
                async with asyncio.timeout(within):
                    await self.downlink.refusals.close()
            except TimeoutError:
                log.error("uplink: held-back refusal counts not journaled in time", within_s=round(within, 3))

    async def _keep_connected(self) -> None:
        delays = RECONNECT.delays()
        while True:
            # The will is the broker's to send, later, when it loses us: its time is when this session
            # began, and the birth says the same time as `since`, so the cloud can tell a will from an
            # older session (arriving late) from this one's.
            self._since = _utc_now()
            will = Will(self.topics.status, self._status("offline", at=self._since))
            try:
                connection = await Connection.open(self.settings, will, on_drop=self.downlink.dropped)
            except ConnectionError as failure:
                delay = next(delays)
                log.warning("uplink connect failed", error=str(failure), retry_in_s=round(delay, 2))
                await self._link_changed(up=False, detail=str(failure))
                await asyncio.sleep(delay)
                continue
            synced_at = self.pusher.synced_seq
            log.info("uplink connected", host=self.settings.host, port=self.settings.port, synced_seq=synced_at)
            await self._link_changed(up=True, detail=f"{self.settings.host}:{self.settings.port}")
            try:
                await self._session(connection)
            except (ConnectionLost, ConnectionError) as lost:
                log.warning("uplink lost", error=str(lost), synced_seq=self.pusher.synced_seq)
                await connection.close(graceful=False)
                await self._link_changed(up=False, detail=str(lost))
                if self.pusher.synced_seq > synced_at or self.pusher.synced_seq >= self.journal.head_seq:
                    delays = RECONNECT.delays()  # the session was useful: reconnect at once
                else:  # a broker that drops us whenever we send must not be hammered
                    await asyncio.sleep(next(delays))
            except asyncio.CancelledError:
                await self._say_goodbye(connection)
                raise
            finally:
                self.connected.clear()

    async def _link_changed(self, up: bool, detail: str) -> None:
        """Journal the link going down or coming back, once per change, so a property manager
        sees 'offline since' in the log (a certificate that does not verify says so here)."""
        previous, self._link_up = self._link_up, up
        if previous is up or (previous is None and up):
            return  # no change, or the first connect: only coming back after being down is news
        kind = UplinkKind.UPLINK_UP if up else UplinkKind.UPLINK_DOWN
        await self.journal.append(Event(kind=kind, priority=Priority.FAULT, source="uplink", body=LinkBody(detail=detail[:300]).model_dump()))

    async def _session(self, connection: Connection) -> None:
        """Push, answer and refresh the birth message until one of them, or the link, ends."""
        await connection.subscribe(self.topics.downlink())
        connection.publish(self.topics.status, self._status("online"), retain=True)
        self.connected.set()
        await first_to_end(
            {
                "uplink-push": self.pusher.run(connection),
                "uplink-snapshots": self.snapshots.run(connection),
                "uplink-downlink": self._answer(connection),
                "uplink-birth": self._refresh_birth(connection),
                "uplink-link": self._watch(connection),
            },
            lambda: self.stop_deadline().share(SESSION_STOP_S, 2 * GOODBYE_S + REFUSALS_CLOSE_S),
        )
        raise ConnectionLost("session ended")

    async def _watch(self, connection: Connection) -> None:
        await connection.lost.wait()
        raise ConnectionLost(f"session lost: {connection.lost_reason}")

    async def _answer(self, connection: Connection) -> None:
        while True:
            await self.downlink.handle(await connection.receive(), connection)

    async def _refresh_birth(self, connection: Connection) -> None:
        """Republish the birth message when the credential version changes, and every minute."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BIRTH_EVERY_S):
                    await self._rebirth.wait()
            self._rebirth.clear()
            connection.publish(self.topics.status, self._status("online"), retain=True)

    async def _say_goodbye(self, connection: Connection) -> None:
        try:
            async with asyncio.timeout(self.stop_deadline().share(GOODBYE_S, GOODBYE_S + REFUSALS_CLOSE_S)):
                await connection.publish(self.topics.status, self._status("offline"), retain=True)
        except (TimeoutError, ConnectionError):
            pass
        within = self.stop_deadline().share(GOODBYE_S, REFUSALS_CLOSE_S)
        try:
            async with asyncio.timeout(within):
                await connection.close(graceful=True)
        except TimeoutError:
            log.error("uplink: paho's network thread did not stop", within_s=round(within, 3))

    def _status(self, state: str, at: str | None = None) -> bytes:
        """The birth, will or goodbye message: what runs here, how far the cloud has it, and when
        (`at`, default now; the will's is when its session began)."""
        body = {"v": WIRE_VERSION, "building": self.topics.building, "state": state}
        if state == "online":
            body |= {
                "version": VERSION,
                "config": self._config_digest(),
                "config_version": self.config_apply.version if self.config_apply is not None else None,
                "head_seq": self.journal.head_seq,
                "synced_seq": self.pusher.synced_seq,
                "credential_version": self._credential_version(),
                "since": self._since,
            }
        body["time"] = at or _utc_now()
        return wire.encode(body).encode()

    async def _status_snapshot(self, args: dict) -> dict:
        return {
            "version": VERSION,
            "config": self._config_digest(),
            "uptime_s": round(time.monotonic() - self.started),
            "head_seq": self.journal.head_seq,
            "synced_seq": self.pusher.synced_seq,
            "credential_version": self._credential_version(),
            "commands": self.commands.names,
        }

    async def _state(self, args: dict) -> dict:
        """What is active in the building now (the cloud's `state` command): the same conditions the
        page, edge status and /metrics show, folded from the journal on the reads pool."""
        conditions = ActiveConditions()
        active = await pools.call(Pool.READS, open_conditions, self.journal.path, conditions)
        return {"head_seq": self.journal.head_seq, "active": [c.as_json() for c in active]} | conditions.listed(active)

    def _config_digest(self) -> str:
        return self.config_apply.digest if self.config_apply is not None else self.config_digest

    def _credential_version(self) -> int | None:
        store = self.credentials()
        return store.version if store is not None else None

    def close(self) -> None:
        """Blocking: close the state files after the last run (the gateway's stop, on the files pool)."""
        self.cursor.close()
        self.nonces.close()
