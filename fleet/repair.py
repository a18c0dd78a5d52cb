"""Gap repair: a signed pull for every hole below a building's head, one owner per hole at a time.

A gap found by the store waits `grace_s` (another worker's batch may be about to fill it), then a
worker takes it with a lease (`SELECT ... FOR UPDATE SKIP LOCKED`: two workers never pull the same
range at once; a worker that dies holding one loses it when the lease ends). It asks the gateway
for the range through the broker (MQTT 5 request/response to its own, unshared reply topic), stores
what comes back like any batch, and records what the gateway no longer holds (evicted, lost to a
refusing disk, never used) in `absent`, so no range is asked for forever.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Callable

import psycopg
import structlog

from edge.uplink.signing import DownlinkKind
from edge.fleet import keys
from edge.fleet.store import Incoming, Store, advance

log = structlog.get_logger("edge.fleet.repair")

PAGE = 1000  # the gateway's largest page
PULL_WAIT_S = 10.0


@dataclass
class RepairStats:
    pulls: int = 0
    events_pulled: int = 0
    absent_recorded: int = 0
    timeouts: int = 0


class Repairer:
    def __init__(self, conn: psycopg.Connection, store: Store, owner: str, publish: Callable[..., None],
                 pages: Callable[[bytes, float], dict[str, Any] | None], key, prefix: str, reply_leaf: str,
                 grace_s: float = 3.0, lease_s: float = 60.0) -> None:
        self.conn = conn
        self.store = store
        self.owner = owner
        self.publish = publish  # publish(topic, payload, response_topic=, correlation=)
        self.pages = pages  # pages(correlation, timeout_s) -> the page, or None
        self.key = key
        self.prefix = prefix
        self.reply_leaf = reply_leaf
        self.grace_s = grace_s
        self.lease_s = lease_s
        self.stats = RepairStats()

    def take(self, limit: int = 4) -> list[tuple[str, int, int]]:
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT building, first_seq, last_seq FROM gaps WHERE found_at < clock_timestamp() - make_interval(secs => %s)"
                " AND (lease_until IS NULL OR lease_until < clock_timestamp()) ORDER BY found_at LIMIT %s FOR UPDATE SKIP LOCKED",
                (self.grace_s, limit)).fetchall()
            for building, first, _ in rows:
                self.conn.execute("UPDATE gaps SET owner=%s, lease_until=clock_timestamp() + make_interval(secs => %s),"
                                  " pulls=pulls+1 WHERE building=%s AND first_seq=%s", (self.owner, self.lease_s, building, first))
        return rows

    def run_once(self) -> int:
        """Repair what is due; returns how many gaps were worked on."""
        gaps = self.take()
        for building, first, last in gaps:
            try:
                self.repair(building, first, last)
            finally:
                with self.conn.transaction():
                    self.conn.execute("UPDATE gaps SET owner=NULL, lease_until=NULL WHERE building=%s AND first_seq=%s"
                                      " AND owner=%s", (building, first, self.owner))
        return len(gaps)

    def repair(self, building: str, first: int, last: int) -> None:
        after = first - 1
        while after < last:
            page = self.pull(building, after, min(PAGE, last - after))
            if page is None:
                self.stats.timeouts += 1
                log.warning("pull unanswered", building=building, after_seq=after, within_s=PULL_WAIT_S)
                return
            events = [e for e in page.get("events", []) if isinstance(e, dict)]
            covered = min(int(page.get("next_after_seq", after)), last)
            batch = json.dumps({"v": 1, "building": building, "lane": "pull", "events": events}).encode()
            self.store.write([Incoming(f"{self.prefix}/{building}/events", batch)])
            self.stats.events_pulled += len(events)
            self._record_absent(building, after, covered, page, {e.get("seq") for e in events})
            if covered <= after:
                return
            after = covered

    def _record_absent(self, building: str, after: int, covered: int, page: dict[str, Any], held: set) -> None:
        """Seqs in (after, covered] the page did not bring: gone, for the reason the page gives."""
        first_retained = page.get("first_retained_seq") or 0
        reasons = [(g["first_seq"], g["last_seq"], str(g.get("reason", "gone"))) for g in page.get("gaps", [])
                   if isinstance(g, dict) and isinstance(g.get("first_seq"), int) and isinstance(g.get("last_seq"), int)]

        def why(seq: int) -> str:
            for a, b, reason in reasons:
                if a <= seq <= b:
                    return reason
            return "evicted" if first_retained and seq < first_retained else "not_held"

        ranges: list[list] = []
        for seq in range(after + 1, covered + 1):
            if seq in held:
                continue
            reason = why(seq)
            if ranges and ranges[-1][1] == seq - 1 and ranges[-1][2] == reason:
                ranges[-1][1] = seq
            else:
                ranges.append([seq, seq, reason])
        with self.conn.transaction():
            if ranges:
                self.conn.cursor().executemany(
                    "INSERT INTO absent (building, first_seq, last_seq, reason) VALUES (%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                    [(building, a, b, r) for a, b, r in ranges])
                self.stats.absent_recorded += sum(b - a + 1 for a, b, _ in ranges)
            with self.conn.cursor() as cur:
                cur.execute("SELECT 1 FROM buildings WHERE building=%s FOR UPDATE", (building,))
                advance(cur, building)

    def pull(self, building: str, after: int, limit: int) -> dict[str, Any] | None:
        payload, _ = keys.sign(self.key, building, DownlinkKind.PULL, {"after_seq": after, "limit": limit})
        correlation = secrets.token_bytes(8)
        self.publish(f"{self.prefix}/{building}/pull/request", payload,
                     response_topic=f"{self.prefix}/{building}/pull/response/{self.reply_leaf}", correlation=correlation)
        self.stats.pulls += 1
        return self.pages(correlation, PULL_WAIT_S)
