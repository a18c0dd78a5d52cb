"""One batch of MQTT messages into PostgreSQL, in one transaction.

The worker hands a batch here and acknowledges its messages (PUBACK) only after `write` returns,
that is after COMMIT. Everything is idempotent, because the broker redelivers what was not
acknowledged: events are inserted `ON CONFLICT (id) DO NOTHING` (a duplicate costs nothing),
command results and snapshots by their keys, a status only when it is newer than the one held.

An ingest transaction takes no building's lock for its events: it leaves a row in `touched`, and
the advancer (`advance_touched`, on its own connection in every worker) works each touched
building's watermark (every seq at or below it stored or recorded absent) and gaps out again from
the rows after the COMMIT, one advancer per building at a time. So workers writing the same
buildings never wait for one another. Events are inserted in id order, so two transactions that
carry the same duplicates never deadlock.

A message that is not what its topic carries (not JSON, the wrong shape, too large, a snapshot
whose bytes do not match its sha256) goes to `quarantine` with the reason, is counted, and is
acknowledged like any other: the worker goes on. An event that breaks its schema is stored and
flagged (`valid = false`, `problems`), never dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import psycopg
from psycopg.types.json import Jsonb

MAX_SEQ = 2**63 - 1
QUARANTINE_KEEP_BYTES = 64 * 1024  # of a message too large to keep whole
PREFIX = "edge/v1"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message as the worker received it; `tag` is the worker's own (what to acknowledge)."""

    topic: str
    payload: bytes
    tag: Any = None
    oversized: bool = False  # over the worker's message limit: only the first bytes are kept
    correlation: bytes | None = None  # MQTT 5 correlation data (a pull's page)


@dataclass
class WriteStats:
    messages: int = 0
    events_new: int = 0
    events_duplicate: int = 0
    events_flagged: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)

    def add(self, other: "WriteStats") -> None:
        self.messages += other.messages
        self.events_new += other.events_new
        self.events_duplicate += other.events_duplicate
        self.events_flagged += other.events_flagged
        self.quarantined += other.quarantined
        self.reasons.update(other.reasons)


Validator = Callable[[dict[str, Any]], list[str]]


def _no_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _json_text(value: Any) -> str:
    """The JSON text of a value for a jsonb column (COPY takes it as it is). jsonb refuses NUL characters
    in strings; they are replaced (and the event flagged by the caller)."""
    text = _dumps(value)
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


def _json(value: Any) -> Jsonb:
    return Jsonb(json.loads(_json_text(value)))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SEQ else None


class Parsed:
    """A batch sorted into what goes where."""

    def __init__(self) -> None:
        self.events: dict[str, tuple] = {}  # id -> row; a duplicate within the batch is counted once
        self.in_batch_duplicates = 0
        self.statuses: list[tuple[str, dict[str, Any]]] = []
        self.results: list[tuple] = []
        self.snapshots: list[tuple] = []
        self.requests: list[tuple] = []
        self.quarantine: list[tuple] = []
        self.touched: dict[str, int] = {}  # building -> a head it says it has (synced_seq), or 0


class Store:
    def __init__(self, conn: psycopg.Connection, prefix: str = PREFIX, validate: Validator | None = None) -> None:
        self.conn = conn
        self.prefix = prefix
        self.depth = len(prefix.split("/"))
        self.validate = validate

    # --- sorting a batch (pure) ------------------------------------------------------

    def parse(self, batch: list[Incoming]) -> Parsed:
        out = Parsed()
        for message in batch:
            parts = message.topic.split("/")
            building = parts[self.depth] if len(parts) > self.depth else None
            leaf = "/".join(parts[self.depth + 1:])
            if message.oversized:
                out.quarantine.append((message.topic, building, "too_large", len(message.payload),
                                       message.payload[:QUARANTINE_KEEP_BYTES]))
                continue
            try:
                payload = json.loads(message.payload)
                if not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
                if payload.get("v") != 1:
                    raise ValueError("not wire version 1")
                if payload.get("building") != building:
                    raise ValueError("the building in the payload is not the topic's")
                if leaf == "events":
                    self._events(out, building, payload)
                elif leaf == "status":
                    self._status(out, building, payload)
                elif leaf == "commands/result":
                    out.results.append((building, str(payload["nonce"]), str(payload["command"]), str(payload["outcome"]),
                                        _json(payload.get("detail") if isinstance(payload.get("detail"), dict) else {})))
                elif leaf.startswith("snapshots/"):
                    self._snapshot(out, building, leaf.removeprefix("snapshots/"), payload)
                elif leaf == "credentials/request":
                    out.requests.append((building, _int(payload.get("have_version")), _int(payload.get("seen_version"))))
                else:
                    raise ValueError(f"not a topic the fleet takes: {leaf}")
            except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as error:
                reason = error.args[0] if isinstance(error, ValueError) and error.args and isinstance(error.args[0], str) \
                    and not isinstance(error, json.JSONDecodeError) else f"malformed: {type(error).__name__}"
                out.quarantine.append((_no_nul(message.topic), building, _no_nul(reason)[:300], len(message.payload),
                                       message.payload))
        return out

    def _events(self, out: Parsed, building: str, payload: dict[str, Any]) -> None:
        events = payload.get("events")
        if not isinstance(events, list):
            raise ValueError("events is not a list")
        lane = payload.get("lane") if isinstance(payload.get("lane"), str) else None
        for event in events:
            if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not 0 < len(event["id"]) <= 64 \
                    or _int(event.get("seq")) is None:
                # without an id and a seq an event has no place; the whole message is kept aside
                raise ValueError("an event without a usable id and seq")
            problems = self.validate(event) if self.validate else []
            if lane == "backlog" and event.get("priority") == "alarm":
                problems.append("an alarm-priority event on the backlog lane")
            body = event.get("body")
            if not isinstance(body, dict):
                body = {"_not_an_object": body}
            text_fields = [event.get(k) for k in ("kind", "priority", "source")]
            body_text = _dumps(body)
            if "\\u0000" in body_text:
                body_text = body_text.replace("\\u0000", "\\ufffd")
                problems.append("NUL characters replaced")
            elif any("\x00" in str(v) for v in text_fields):
                problems.append("NUL characters replaced")
            mono = event.get("mono_ns")
            row = (_no_nul(event["id"]), building, event["seq"], _time(event.get("time")),
                   mono if isinstance(mono, int) and not isinstance(mono, bool) and abs(mono) < 2**63 else None,
                   _no_nul(str(event.get("kind"))), _no_nul(str(event.get("priority"))), _no_nul(str(event.get("source"))),
                   body_text, lane, not problems, "; ".join(problems)[:2000] or None)
            if row[0] in out.events:
                out.in_batch_duplicates += 1
            out.events[row[0]] = row
            out.touched.setdefault(building, 0)

    def _status(self, out: Parsed, building: str, payload: dict[str, Any]) -> None:
        if payload.get("state") not in ("online", "offline"):
            raise ValueError("state is neither online nor offline")
        out.statuses.append((building, payload))
        out.touched[building] = max(out.touched.get(building, 0), _int(payload.get("synced_seq")) or 0)

    def _snapshot(self, out: Parsed, building: str, event_id: str, payload: dict[str, Any]) -> None:
        try:
            jpeg = base64.b64decode(payload["jpeg"], validate=True)
        except (binascii.Error, TypeError) as error:
            raise ValueError(f"jpeg is not base64: {error}") from None
        if payload.get("event_id") != event_id:
            raise ValueError("event_id is not the topic's")
        if hashlib.sha256(jpeg).hexdigest() != payload.get("sha256"):
            raise ValueError("sha256 does not match the bytes")
        if _int(payload.get("seq")) is None or not isinstance(payload.get("file"), str):
            raise ValueError("seq or file missing")
        out.snapshots.append((event_id, building, payload["seq"], str(payload.get("kind")), payload["file"], len(jpeg),
                              payload["sha256"], jpeg))

    # --- writing (one transaction; the caller commits) --------------------------------

    def write(self, batch: list[Incoming]) -> WriteStats:
        """Write `batch` and commit; raises psycopg errors (nothing is then committed)."""
        parsed = self.parse(batch)
        stats = WriteStats(messages=len(batch), quarantined=len(parsed.quarantine))
        stats.reasons.update(q[2] for q in parsed.quarantine)
        with self.conn.transaction(), self.conn.cursor() as cur:
            if parsed.events:
                rows = [parsed.events[i] for i in sorted(parsed.events)]
                if not getattr(self.conn, "_fleet_staging", False):  # once per connection (temp tables are per session)
                    cur.execute("CREATE TEMP TABLE IF NOT EXISTS staging (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
                with cur.copy("COPY staging (id, building, seq, time, mono_ns, kind, priority, source, body, lane, valid, problems)"
                              " FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute("INSERT INTO events SELECT * FROM staging ORDER BY id ON CONFLICT (id) DO NOTHING")
                stats.events_new = cur.rowcount
                stats.events_duplicate = len(rows) - cur.rowcount + parsed.in_batch_duplicates
                stats.events_flagged = sum(1 for r in rows if not r[10])
            if parsed.results:
                cur.executemany("INSERT INTO command_results (building, nonce, command, outcome, detail) VALUES (%s,%s,%s,%s,%s)"
                                " ON CONFLICT DO NOTHING", parsed.results)
            if parsed.snapshots:
                cur.executemany("INSERT INTO snapshots (event_id, building, seq, kind, file, bytes, sha256, jpeg)"
                                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING", parsed.snapshots)
            if parsed.requests:
                cur.executemany("INSERT INTO credential_requests (building, have_version, seen_version) VALUES (%s,%s,%s)",
                                parsed.requests)
            if parsed.quarantine:
                cur.executemany("INSERT INTO quarantine (topic, building, reason, size, payload) VALUES (%s,%s,%s,%s,%s)",
                                parsed.quarantine)
            buildings = sorted({*parsed.touched, *(b for b, _ in parsed.statuses), *(r[0] for r in parsed.results)})
            if buildings:  # a new building gets its row; DO NOTHING takes no lock on an existing one
                cur.execute("INSERT INTO buildings (building) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (buildings,))
            for building, status in sorted(parsed.statuses, key=lambda s: s[0]):
                self._apply_status(cur, building, status)
            if parsed.touched:  # the advancer works the watermark out after the COMMIT (see advance_touched)
                cur.execute("INSERT INTO touched (building) SELECT unnest(%s::text[])", (sorted(parsed.touched),))
        if parsed.events:
            self.conn._fleet_staging = True  # committed: the temp table stays for this session (a rollback undoes it)
        return stats

    def _apply_status(self, cur: psycopg.Cursor, building: str, status: dict[str, Any]) -> None:
        """An online status applies when it is no older than the one held; an offline one (a clean stop,
        or the will, whose time is when its session began) when it is no older than the session held."""
        at = _time(status.get("time")) or datetime.now(timezone.utc)
        since = _time(status.get("since"))
        state = status["state"]
        cur.execute(
            "UPDATE buildings SET state=%(state)s, status=%(status)s, status_time=%(at)s,"
            " since=CASE WHEN %(state)s='online' THEN coalesce(%(since)s, since) ELSE since END,"
            " head_seq=coalesce(%(head)s, head_seq), synced_seq=coalesce(%(synced)s, synced_seq),"
            " credential_version=coalesce(%(cred)s, credential_version), last_seen=clock_timestamp()"
            " WHERE building=%(b)s AND (status_time IS NULL"
            "  OR (%(state)s='online' AND %(at)s >= status_time)"
            "  OR (%(state)s='offline' AND %(at)s >= coalesce(since, '-infinity'::timestamptz)))",
            {"state": state, "status": _json(status), "at": at, "since": since, "b": building,
             "head": _int(status.get("head_seq")), "synced": _int(status.get("synced_seq")),
             "cred": status.get("credential_version") if _int(status.get("credential_version")) else None},
        )
        if cur.rowcount == 0:
            cur.execute("UPDATE buildings SET last_seen=clock_timestamp() WHERE building=%s", (building,))


def _plan(watermark: int, max_seq: int, synced: int, islands: list, absent: list) -> tuple[int, int, list[tuple[int, int]]]:
    """(new watermark, highest seq stored, gaps) from the runs of stored seqs and the absent ranges above the
    watermark. `synced`: what the gateway says the broker has (its status), so a tail a broker lost after
    acknowledging it is a gap too."""
    ranges = sorted([*islands, *absent])
    stored_top = max([max_seq, *(last for _, last in islands)])
    top = max(stored_top, synced)
    mark, gaps = watermark, []
    for first, last in ranges:
        if first > mark + 1:
            gaps.append((mark + 1, first - 1))
        mark = max(mark, last)
    if top > mark:
        gaps.append((mark + 1, top))
    new_watermark = watermark
    for first, last in ranges:
        if first > new_watermark + 1:
            break
        new_watermark = max(new_watermark, last)
    return new_watermark, stored_top, gaps


def _save_gaps(cur: psycopg.Cursor, held: dict[str, set], planned: dict[str, list]) -> None:
    gone = [(b, first) for b, gaps in planned.items() for first, last in held.get(b, set()) - set(gaps)]
    new = [(b, first, last) for b, gaps in planned.items() for first, last in set(gaps) - held.get(b, set())]
    if gone:
        cur.executemany("DELETE FROM gaps WHERE building=%s AND first_seq=%s", gone)
    if new:  # a gap keeps its found_at (and its owner) while it stays the same
        cur.executemany("INSERT INTO gaps (building, first_seq, last_seq) VALUES (%s,%s,%s) ON CONFLICT (building, first_seq)"
                        " DO UPDATE SET last_seq=excluded.last_seq", new)


def advance(cur: psycopg.Cursor, building: str) -> tuple[int, list[tuple[int, int]]]:
    """Recompute one building's watermark and gaps from its rows above the watermark; the caller holds the
    building's row lock. Returns (watermark, gaps)."""
    watermark, max_seq, synced = cur.execute(
        "SELECT watermark, max_seq, coalesce(synced_seq, 0) FROM buildings WHERE building=%s", (building,)).fetchone()
    islands = cur.execute(
        "SELECT min(seq), max(seq) FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq) AS g FROM events"
        " WHERE building=%s AND seq > %s) t GROUP BY g ORDER BY 1", (building, watermark)).fetchall()
    absent = cur.execute("SELECT first_seq, last_seq FROM absent WHERE building=%s AND last_seq > %s ORDER BY first_seq",
                         (building, watermark)).fetchall()
    new_watermark, stored_top, gaps = _plan(watermark, max_seq, synced, islands, absent)
    cur.execute("UPDATE buildings SET watermark=%s, max_seq=%s WHERE building=%s", (new_watermark, stored_top, building))
    held = {building: set(cur.execute("SELECT first_seq, last_seq FROM gaps WHERE building=%s", (building,)).fetchall())}
    _save_gaps(cur, held, {building: gaps})
    return new_watermark, gaps


def advance_touched(conn: psycopg.Connection, limit: int = 500) -> int:
    """Advance the watermark of buildings whose rows changed (the `touched` rows ingest transactions left),
    many at once, in one transaction; returns how many buildings it took.

    A building is taken with `FOR UPDATE SKIP LOCKED`, so two workers' advancers never work the same one and
    never wait for each other. Its touched rows are deleted before its rows are read: every event committed
    with a deleted touched row is seen by the reads that follow (READ COMMITTED: each statement sees what was
    committed before it began), and one committed later leaves a touched row for the next round."""
    with conn.transaction(), conn.cursor() as cur:
        names = [b for (b,) in cur.execute("SELECT DISTINCT building FROM touched LIMIT %s", (limit,))]
        if not names:
            return 0
        rows = cur.execute("SELECT building, watermark, max_seq, coalesce(synced_seq, 0) FROM buildings"
                           " WHERE building = ANY(%s) ORDER BY building FOR UPDATE SKIP LOCKED", (names,)).fetchall()
        if not rows:
            return 0
        taken = [r[0] for r in rows]
        seen = dict(cur.execute("WITH gone AS (DELETE FROM touched WHERE building = ANY(%s) RETURNING building, at)"
                                " SELECT building, max(at) FROM gone GROUP BY building", (taken,)).fetchall())
        marks = [r[1] for r in rows]
        islands: dict[str, list] = {}
        for b, first, last in cur.execute(
                "SELECT building, min(seq), max(seq) FROM (SELECT e.building, e.seq, e.seq - row_number() OVER"
                " (PARTITION BY e.building ORDER BY e.seq) AS g FROM unnest(%s::text[], %s::bigint[]) AS w(building, watermark)"
                " JOIN events e ON e.building = w.building AND e.seq > w.watermark) t GROUP BY building, g", (taken, marks)):
            islands.setdefault(b, []).append((first, last))
        absent: dict[str, list] = {}
        for b, first, last in cur.execute(
                "SELECT a.building, a.first_seq, a.last_seq FROM unnest(%s::text[], %s::bigint[]) AS w(building, watermark)"
                " JOIN absent a ON a.building = w.building AND a.last_seq > w.watermark", (taken, marks)):
            absent.setdefault(b, []).append((first, last))
        held: dict[str, set] = {}
        for b, first, last in cur.execute("SELECT building, first_seq, last_seq FROM gaps WHERE building = ANY(%s)", (taken,)):
            held.setdefault(b, set()).add((first, last))
        updates, planned = [], {}
        for building, watermark, max_seq, synced in rows:
            new_watermark, stored_top, gaps = _plan(watermark, max_seq, synced, islands.get(building, []), absent.get(building, []))
            planned[building] = gaps
            if (new_watermark, stored_top) != (watermark, max_seq) or building in seen:
                updates.append((new_watermark, stored_top, seen.get(building), building))
        if updates:  # one statement for them all: a round trip per building was most of an advancer's time
            w, m, seen_at, names_ = (list(column) for column in zip(*updates))
            cur.execute("UPDATE buildings b SET watermark=u.w, max_seq=u.m, last_seen=greatest(b.last_seen, coalesce(u.seen, b.last_seen))"
                        " FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::text[]) AS u(w, m, seen, building)"
                        " WHERE b.building = u.building", (w, m, seen_at, names_))
        _save_gaps(cur, held, planned)
    return len(rows)
