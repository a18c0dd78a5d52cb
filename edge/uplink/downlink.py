"""Messages from the cloud: verified first, then credential updates, commands and pulls.

Everything that arrives is checked by the `Verifier` (size and nesting before parsing,
signature, building, kind, expiry, nonce). A refusal changes nothing and is counted; the
journal gets it through `Refusals` (once per topic and reason per window, with a count),
as it gets messages the connection dropped unread. No message, however built, may end
the uplink: whatever acting on one raises is a refusal (`failed`) too. Credential change
sets must follow the store's version exactly (version = store + 1); an older or equal one
is a harmless redelivery, a newer one means we missed some, so we ask for a snapshot
instead of applying a change set on top of a hole. The store applies each atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable

import structlog
from pydantic import ValidationError

from edge.runtime import pools
from edge.doors.credentials.credential import Credential
from edge.doors.credentials.store import CredentialStore, CredentialStoreUnavailable, Removal
from edge.config.apply import MAX_WATCH_S, MIN_WATCH_S, ConfigApplier
from edge.events import Event, Priority
from edge.uplink.kinds import UplinkKind
from edge.journal import Journal
from edge.runtime.pools import Pool
from edge.uplink import pull, wire
from edge.uplink.commands import CommandOutcome, CommandTable
from edge.uplink.mqtt import Connection, Drop, Message
from edge.uplink.refusals import Refusals
from edge.uplink.signing import DownlinkKind, DownlinkRefused, Envelope, Refusal, Verifier
from edge.uplink.topics import WIRE_VERSION, Topics

log = structlog.get_logger("edge.uplink")

ANSWER_WITHIN_S = 5.0  # for a config's answer to be acknowledged before the apply may restart the daemon


def _change(entry: Any) -> Credential | Removal:
    if not isinstance(entry, dict) or entry.get("op") not in ("upsert", "remove"):
        raise ValueError("each change is {op: upsert, credential: {...}} or {op: remove, key: ...}")
    if entry["op"] == "remove":
        return Removal(str(entry.get("key")))
    return Credential.model_validate(entry.get("credential"))


def _version(body: dict[str, Any]) -> int:
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError("version must be a positive integer")
    return version


@dataclass(slots=True)
class DownlinkStats:
    handled: int = 0  # messages read from the connection (acted on or refused)
    refused: int = 0  # of those, refused; plus those too large to be read at all
    dropped: int = 0  # never read: the incoming queue was full


class Downlink:
    def __init__(
        self,
        verifier: Verifier,
        topics: Topics,
        journal: Journal,
        credentials: Callable[[], CredentialStore | None],
        commands: CommandTable,
        page_bytes: int,
        on_credentials: Callable[[], None] = lambda: None,
        config: ConfigApplier | None = None,
    ) -> None:
        self.verifier = verifier
        self.topics = topics
        self.journal = journal
        self.credentials = credentials
        self.commands = commands
        self.page_bytes = page_bytes
        self.on_credentials = on_credentials
        self.config = config  # the building config from the fleet (edge/config/apply.py); None: refused
        self.stats = DownlinkStats()
        self.refusals = Refusals(journal)

    async def handle(self, message: Message, connection: Connection) -> None:
        """Act on one message; every failure is a counted refusal, never an exception."""
        self.stats.handled += 1
        routes = {
            self.topics.pull_request: ({DownlinkKind.PULL}, self._pull),
            self.topics.credentials: ({DownlinkKind.CHANGE_SET, DownlinkKind.SNAPSHOT}, self._credentials),
            self.topics.commands: ({DownlinkKind.COMMAND}, self._command),
            self.topics.config: ({DownlinkKind.CONFIG_APPLY}, self._config),
        }
        route = routes.get(message.topic)
        if route is None:
            return
        kinds, act = route
        try:
            envelope = await self.verifier.verify(message.payload, {str(k) for k in kinds}, time.time())
            await act(envelope, message, connection)
        except DownlinkRefused as refusal:
            self._refuse(message.topic, refusal)
        except Exception as error:  # noqa: BLE001 - a fault of ours is journaled; the uplink goes on
            failed = DownlinkRefused(Refusal.FAILED, f"{type(error).__name__}: {error}"[:300])
            if self._refuse(message.topic, failed):  # the traceback once per window, not per message
                log.exception("downlink message failed", topic=message.topic)

    def dropped(self, topic: str, reason: Drop) -> None:
        """The connection dropped a message unread (its `on_drop`)."""
        if reason is Drop.TOO_LARGE:
            self._refuse(topic, DownlinkRefused(Refusal.TOO_LARGE, "larger than the connection takes"))
        else:
            self.stats.dropped += 1
            self.refusals.note(UplinkKind.DOWNLINK_DROPPED, topic, str(reason))

    def _refuse(self, topic: str, refusal: DownlinkRefused) -> bool:
        self.stats.refused += 1
        return self.refusals.note(UplinkKind.DOWNLINK_REFUSED, topic, str(refusal.reason), refusal.detail)

    async def _pull(self, envelope: Envelope, message: Message, connection: Connection) -> None:
        try:
            request = pull.PullRequest.from_body(envelope.body)
        except pull.BadPull as error:
            raise DownlinkRefused(Refusal.BAD_BODY, str(error)) from None
        reply_to = message.response_topic or envelope.body.get("reply_to") or self.topics.pull_response
        if not isinstance(reply_to, str) or not reply_to.startswith(self.topics.pull_response):
            raise DownlinkRefused(Refusal.BAD_BODY, f"reply topic must start with {self.topics.pull_response}")
        correlation = message.correlation
        if correlation is None and isinstance(envelope.body.get("correlation"), str):
            correlation = envelope.body["correlation"].encode()
        page = await pools.call(
            Pool.READS, pull.answer, self.journal.path, self.topics.building, request, self.journal.head_seq, self.page_bytes
        )
        if message.response_topic is None and correlation is not None:
            # MQTT 3.1.1 has no correlation property: echo it in the page instead.
            page = page[:-1] + b',"correlation":' + wire.encode(correlation.decode(errors="replace")).encode() + b"}"
        connection.publish(reply_to, page, correlation=correlation)

    async def _credentials(self, envelope: Envelope, message: Message, connection: Connection) -> None:
        store = self.credentials()  # asked each time: the doors may reopen their store
        if store is None:
            raise DownlinkRefused(Refusal.BAD_BODY, "this gateway has no credential store")
        try:
            version = _version(envelope.body)
            if envelope.kind == DownlinkKind.SNAPSHOT:
                records = [Credential.model_validate(r) for r in envelope.body.get("credentials", [])]
            else:
                changes = [_change(entry) for entry in envelope.body.get("changes", [])]
        except (ValidationError, ValueError, TypeError) as error:
            raise DownlinkRefused(Refusal.BAD_BODY, str(error)[:300]) from None
        have = store.version
        if envelope.kind == DownlinkKind.CHANGE_SET and version > have + 1:
            await self._ask_for_snapshot(connection, have, version)
            return
        try:
            if envelope.kind == DownlinkKind.SNAPSHOT:
                report = await pools.call(Pool.FILES, store.replace_snapshot, version, records)
            elif version == have + 1:
                report = await pools.call(Pool.FILES, store.apply_change_set, version, changes)
            else:
                report = None  # older or equal: a redelivery, already applied
        except (CredentialStoreUnavailable, ValueError) as error:
            raise DownlinkRefused(Refusal.BAD_BODY, str(error)[:300]) from None
        applied = report is not None and report.applied
        await self.journal.append(
            Event(
                kind=UplinkKind.CREDENTIALS_APPLIED, priority=Priority.ACCESS, source="uplink",
                body={"kind": envelope.kind, "version": version, "applied": applied, "store_version": store.version},
            )
        )
        if applied:
            self.on_credentials()

    async def _ask_for_snapshot(self, connection: Connection, have: int, seen: int) -> None:
        body = {"have_version": have, "seen_version": seen}
        await self.journal.append(
            Event(kind=UplinkKind.CREDENTIALS_SNAPSHOT_REQUESTED, priority=Priority.FAULT, source="uplink", body=body)
        )
        payload = wire.encode({"v": WIRE_VERSION, "building": self.topics.building, **body}).encode()
        connection.publish(self.topics.credentials_request, payload)

    async def _command(self, envelope: Envelope, message: Message, connection: Connection) -> None:
        name, args = envelope.body.get("command"), envelope.body.get("args", {})
        if not isinstance(name, str) or not isinstance(args, dict):
            raise DownlinkRefused(Refusal.BAD_BODY, "a command is {command: NAME, args: {...}}")
        result = await self.commands.run(name, args)
        body = {"command": name, "nonce": envelope.nonce, "outcome": str(result.outcome), "detail": result.detail}
        record = body | {"detail": _counted(result.detail)}
        await self.journal.append(Event(kind=UplinkKind.COMMAND_EXECUTED, priority=Priority.ACCESS, source="uplink", body=record))
        connection.publish(self.topics.command_results, wire.encode({"v": WIRE_VERSION, "building": self.topics.building, **body}).encode())


    async def _config(self, envelope: Envelope, message: Message, connection: Connection) -> None:
        """A building config from the fleet: checked, written, applied and watched (edge/config/apply.py);
        the outcome, with every problem, goes back as the result of a `config.apply` command. The answer
        is waited for (its PUBACK, a few seconds at most): an apply that restarts the daemon comes next."""
        if self.config is None:
            raise DownlinkRefused(Refusal.BAD_BODY, "this gateway takes no config from the fleet")
        body = envelope.body
        try:
            version = _version(body)
        except ValueError as error:
            raise DownlinkRefused(Refusal.BAD_BODY, str(error)) from None
        text, watch_s = body.get("yaml"), body.get("watch_s")
        if not isinstance(text, str):
            raise DownlinkRefused(Refusal.BAD_BODY, "a config is {version: N, yaml: TEXT[, watch_s: S]}")
        if watch_s is not None and (isinstance(watch_s, bool) or not isinstance(watch_s, int | float)
                                    or not MIN_WATCH_S <= watch_s <= MAX_WATCH_S):
            raise DownlinkRefused(Refusal.BAD_BODY, f"watch_s must be {MIN_WATCH_S:g} to {MAX_WATCH_S:g} seconds")

        async def answer(ok: bool, detail: dict[str, Any]) -> None:
            result = {"v": WIRE_VERSION, "building": self.topics.building, "command": str(DownlinkKind.CONFIG_APPLY),
                      "nonce": envelope.nonce, "outcome": CommandOutcome.DONE if ok else CommandOutcome.FAILED, "detail": detail}
            sent = connection.publish(self.topics.command_results, wire.encode(result).encode())
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(ANSWER_WITHIN_S):
                    await sent

        await self.config.apply(version, text, envelope.nonce, None if watch_s is None else float(watch_s), answer)


def _counted(detail: dict[str, Any]) -> dict[str, Any]:
    """The command's answer as the journal keeps it: a list (a trail search's rows) becomes its length.

    The answer goes to the cloud once; the journal record only says what was done. Rows copied into
    it would be personal data kept twice, and a page of them would bloat every sync of the journal."""
    return {key: len(value) if isinstance(value, list | tuple) else value for key, value in detail.items()}
