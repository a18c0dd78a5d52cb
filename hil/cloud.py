"""The reference cloud consumer: how the cloud side of the uplink is meant to be written.

It subscribes to every building's events and status, stores events in SQLite deduplicated by
event id, checks seq continuity per building and pulls the missing ranges (a range the
gateway no longer holds is recorded as evicted, not asked for forever), and signs and sends
credential change sets, snapshots and commands. Tests and HIL scenarios drive it in-process;
`python -m edge.hil.cloud --port N --key cloud.key --db cloud.db` runs it on its own.
"""

from __future__ import annotations

import argparse
import base64
import asyncio
import contextlib
import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.uplink.mqtt import BrokerSettings, Connection, Message
from edge.uplink.signing import DownlinkKind, Envelope, seal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    building TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL, priority TEXT NOT NULL, body TEXT NOT NULL, received_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_seq ON events (building, seq);
CREATE TABLE IF NOT EXISTS absent (building TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (building, seq));
CREATE TABLE IF NOT EXISTS snapshots (
    building TEXT NOT NULL, event_id TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL, file TEXT NOT NULL,
    sha256 TEXT NOT NULL, jpeg BLOB NOT NULL, received_ns INTEGER NOT NULL
);
"""


def generate_keys(directory: Path) -> tuple[Path, Path]:
    """An Ed25519 key pair as PEM files: cloud.key (private) and cloud.pub (for the gateway's config)."""
    key = Ed25519PrivateKey.generate()
    private, public = directory / "cloud.key", directory / "cloud.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@dataclass
class BuildingBook:
    """What the cloud holds per building: credential state and the latest status."""

    credential_version: int = 0
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    snapshot_requests: int = 0
    command_results: list[dict[str, Any]] = field(default_factory=list)


class Cloud:
    def __init__(self, host: str, port: int, db: Path, key: Ed25519PrivateKey, prefix: str = "edge/v1", client_id: str = "cloud") -> None:
        self.settings = BrokerSettings(host=host, port=port, client_id=client_id, protocol="5")
        self.key = key
        self.prefix = prefix
        self.db = sqlite3.connect(db, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        self.books: dict[str, BuildingBook] = {}
        self.duplicates = 0
        self.bad_snapshots = 0
        self.snapshot_duplicates = 0
        self.snapshots_before_event = 0  # must stay 0: a snapshot follows its event
        self.received = 0
        self.connection: Connection | None = None
        self._pulls: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.arrived = asyncio.Event()
        self.on_events = None  # optional callback(list[event dicts]) for benchmarks

    def book(self, building: str) -> BuildingBook:
        return self.books.setdefault(building, BuildingBook())

    # --- session ----------------------------------------------------------------------

    async def start(self, timeout_s: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="cloud")
        deadline = time.monotonic() + timeout_s
        while self.connection is None or self.connection.lost.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cloud did not connect to {self.settings.host}:{self.settings.port} in {timeout_s} s")
            await asyncio.sleep(0.02)

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self._task:
            self._task.cancel()
            done, _ = await asyncio.wait([self._task], timeout=timeout_s)
            if not done:
                raise TimeoutError(f"the cloud's session task did not stop within {timeout_s} s of a cancel")
        if self.connection:
            await self.connection.close()

    async def _run(self) -> None:
        p = self.prefix
        while True:
            try:
                connection = await Connection.open(self.settings, incoming=100_000, incoming_bytes=2**31)
                await connection.subscribe((f"{p}/+/events", f"{p}/+/status", f"{p}/+/credentials/request",
                                            f"{p}/+/commands/result", f"{p}/+/pull/response/cloud", f"{p}/+/snapshots/+"))
            except ConnectionError:
                await asyncio.sleep(0.2)
                continue
            self.connection = connection
            while not connection.lost.is_set():
                try:
                    async with asyncio.timeout(0.2):
                        message = await connection.receive()
                except TimeoutError:
                    continue
                await self._handle(message)
            await connection.close(graceful=False)

    async def _handle(self, message: Message) -> None:
        parts = message.topic.split("/")
        building, leaf = parts[len(self.prefix.split("/"))], "/".join(parts[len(self.prefix.split("/")) + 1:])
        try:
            payload = json.loads(message.payload)
        except ValueError:
            return
        if leaf == "events":
            self.store(building, payload["events"])
        elif leaf == "status":
            self.book(building).status = payload
            self.arrived.set()
        elif leaf == "credentials/request":
            self.book(building).snapshot_requests += 1
            await self.send_snapshot(building)
        elif leaf == "commands/result":
            self.book(building).command_results.append(payload)
            self.arrived.set()
        elif leaf.startswith("snapshots/"):
            self.store_snapshot(building, leaf.removeprefix("snapshots/"), payload)
        elif leaf == "pull/response/cloud":
            waiter = self._pulls.pop(message.correlation or b"", None)
            if waiter and not waiter.done():
                waiter.set_result(payload)

    # --- the log ----------------------------------------------------------------------

    def store(self, building: str, events: list[dict[str, Any]]) -> None:
        now = time.time_ns()
        before = self.db.total_changes
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?)",
            [(building, e["seq"], e["id"], e["kind"], e["priority"], json.dumps(e["body"]), now) for e in events],
        )
        self.db.execute("COMMIT")
        fresh = self.db.total_changes - before
        self.received += fresh
        self.duplicates += len(events) - fresh
        if self.on_events:
            self.on_events(events, now)
        self.arrived.set()

    def store_snapshot(self, building: str, event_id: str, payload: dict[str, Any]) -> None:
        """Keep a snapshot whose bytes match its sha256, one per event id; count one that came before
        its event (the gateway sends it only after the event's PUBACK, so that must not happen)."""
        try:
            jpeg = base64.b64decode(payload["jpeg"], validate=True)
            valid = (payload["event_id"] == event_id and hashlib.sha256(jpeg).hexdigest() == payload["sha256"]
                     and isinstance(payload["seq"], int) and isinstance(payload["file"], str))
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            self.bad_snapshots += 1
            return
        if self.db.execute("SELECT 1 FROM events WHERE id=?", (event_id,)).fetchone() is None:
            self.snapshots_before_event += 1
        before = self.db.total_changes
        self.db.execute("INSERT OR IGNORE INTO snapshots VALUES (?,?,?,?,?,?,?)",
                        (building, event_id, payload["seq"], payload["file"], payload["sha256"], jpeg, time.time_ns()))
        self.snapshot_duplicates += self.db.total_changes == before
        self.arrived.set()

    def snapshots(self, building: str) -> dict[str, dict[str, Any]]:
        """Event id -> the snapshot the cloud holds for it."""
        rows = self.db.execute("SELECT event_id, seq, file, sha256, jpeg FROM snapshots WHERE building=? ORDER BY seq", (building,))
        return {i: {"seq": s, "file": f, "sha256": h, "jpeg": j} for i, s, f, h, j in rows}

    def seqs(self, building: str) -> list[int]:
        return [s for (s,) in self.db.execute("SELECT seq FROM events WHERE building=? ORDER BY seq", (building,))]

    def events(self, building: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT seq, id, kind, body FROM events WHERE building=? ORDER BY seq", (building,))
        return [{"seq": s, "id": i, "kind": k, "body": json.loads(b)} for s, i, k, b in rows]

    def gaps(self, building: str, through: int | None = None) -> list[tuple[int, int]]:
        """Missing seq ranges (first, last) up to `through` (default: the highest seen), minus known evictions."""
        have = set(self.seqs(building)) | {s for (s,) in self.db.execute("SELECT seq FROM absent WHERE building=?", (building,))}
        top = max(have, default=0) if through is None else through
        gaps, start = [], None
        for seq in range(1, top + 1):
            if seq not in have and start is None:
                start = seq
            elif seq in have and start is not None:
                gaps.append((start, seq - 1))
                start = None
        if start is not None:
            gaps.append((start, top))
        return gaps

    async def pull(self, building: str, after_seq: int, limit: int = 1000, timeout_s: float = 10.0) -> dict[str, Any]:
        """One page of the building's log after `after_seq` (MQTT 5 request/response)."""
        correlation = secrets.token_bytes(8)
        waiter = asyncio.get_running_loop().create_future()
        self._pulls[correlation] = waiter
        payload = self.sign(building, DownlinkKind.PULL, {"after_seq": after_seq, "limit": limit})
        self.connection.publish(
            f"{self.prefix}/{building}/pull/request", payload,
            response_topic=f"{self.prefix}/{building}/pull/response/cloud", correlation=correlation,
        )
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        finally:
            self._pulls.pop(correlation, None)

    async def fill_gaps(self, building: str, through: int | None = None) -> int:
        """Pull every missing range; seqs the gateway no longer holds are recorded as evicted. Returns pulls made."""
        pulls = 0
        for first, last in self.gaps(building, through):
            after = first - 1
            while after < last:
                page = await self.pull(building, after, min(1000, last - after))
                pulls += 1
                self.store(building, page["events"])
                covered = min(page["next_after_seq"], last)
                held = set(self.seqs_between(building, after, covered))
                self.db.executemany(
                    "INSERT OR IGNORE INTO absent VALUES (?, ?)",
                    [(building, s) for s in range(after + 1, covered + 1) if s not in held],
                )
                if covered <= after:
                    break
                after = covered
        return pulls

    def seqs_between(self, building: str, after: int, through: int) -> list[int]:
        return [s for (s,) in self.db.execute("SELECT seq FROM events WHERE building=? AND seq>? AND seq<=?", (building, after, through))]

    # --- downlink -----------------------------------------------------------------------

    def sign(self, building: str, kind: str, body: dict[str, Any], ttl_s: float = 300.0, now: float | None = None) -> bytes:
        issued = time.time() if now is None else now
        return seal(self.key, Envelope(str(kind), building, issued, issued + ttl_s, secrets.token_hex(16), body))

    def change_set(self, building: str, changes: list[dict[str, Any]]) -> bytes:
        """Record a change set in the book and return it signed with the next version."""
        book = self.book(building)
        book.credential_version += 1
        for change in changes:
            if change["op"] == "upsert":
                book.credentials[change["credential"]["key"]] = change["credential"]
            else:
                book.credentials.pop(change["key"], None)
        return self.sign(building, DownlinkKind.CHANGE_SET, {"version": book.credential_version, "changes": changes})

    async def send(self, building: str, leaf: str, payload: bytes) -> None:
        await self.connection.publish(f"{self.prefix}/{building}/{leaf}", payload)

    async def send_snapshot(self, building: str) -> None:
        book = self.book(building)
        body = {"version": book.credential_version, "credentials": list(book.credentials.values())}
        await self.send(building, "credentials", self.sign(building, DownlinkKind.SNAPSHOT, body))

    async def command(self, building: str, name: str, args: dict[str, Any] | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
        payload = self.sign(building, DownlinkKind.COMMAND, {"command": name, "args": args or {}})
        nonce = json.loads(base64.b64decode(json.loads(payload)["signed"]))["nonce"]
        await self.send(building, "commands", payload)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for result in self.book(building).command_results:
                if result.get("nonce") == nonce:
                    return result
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self.arrived.wait()
        raise TimeoutError(f"no result for command {name}")


async def _serve(args: argparse.Namespace) -> None:
    key = serialization.load_pem_private_key(args.key.read_bytes(), None)
    cloud = Cloud(args.host, args.port, args.db, key, args.prefix)
    await cloud.start()
    while True:
        await asyncio.sleep(args.report_s)
        for building in sorted({b for (b,) in cloud.db.execute("SELECT DISTINCT building FROM events")}):
            pulled = await cloud.fill_gaps(building, cloud.book(building).status.get("synced_seq"))
            print(json.dumps({"building": building, "events": len(cloud.seqs(building)), "duplicates": cloud.duplicates,
                              "gaps": cloud.gaps(building), "pulls": pulled}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.cloud", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--db", type=Path, default=Path("cloud.db"))
    parser.add_argument("--key", type=Path, help="Ed25519 private key (PEM); see --keygen")
    parser.add_argument("--keygen", type=Path, metavar="DIR", help="write DIR/cloud.key and DIR/cloud.pub and exit")
    parser.add_argument("--prefix", default="edge/v1")
    parser.add_argument("--report-s", type=float, default=10.0)
    args = parser.parse_args()
    if args.keygen:
        print(*generate_keys(args.keygen))
        return
    if args.key is None:
        parser.error("--key is required (make one with --keygen DIR)")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
