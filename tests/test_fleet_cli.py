"""The cloud CLI against a real gateway (`edge run`), mosquitto and, for status and gaps, PostgreSQL:
keygen, pull a range into JSONL, a command waiting for its result, a signed credential change set,
watch, status and gaps."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

from edge.hil.broker import Broker

from conftest import REPO

from fleet_rig import Ingest, cloud_keys, postgres, prepared, query, until  # noqa: F401 - fixtures


def fleet(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.fleet.cli", *args], capture_output=True, text=True, timeout=timeout_s)


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites_it(tmp_path):
    done = fleet("keygen", str(tmp_path / "keys"))
    assert done.returncode == 0, done.stderr
    private = tmp_path / "keys" / "cloud.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (tmp_path / "keys" / "cloud.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = private.read_bytes()
    again = fleet("keygen", str(tmp_path / "keys"))
    assert again.returncode != 0 and "exists" in again.stderr
    assert private.read_bytes() == before


def test_pull_command_credentials_and_watch_against_a_running_gateway(tmp_path, cloud_keys):
    private, public = cloud_keys
    with Broker() as broker:
        (gateway,) = prepared(tmp_path, broker.port, public, 2500, "c1", bandwidth_bytes_per_s=20000)
        base = ("--broker", f"127.0.0.1:{broker.port}", "--key", str(private))
        try:
            gateway.start()
            watched = fleet(*base, "watch", "c1", "--count", "5", "--seconds", "30")
            assert watched.returncode == 0, watched.stderr
            lines = [json.loads(line) for line in watched.stdout.splitlines()]
            assert len(lines) == 5 and all(line["building"] == "c1" for line in lines)

            out = tmp_path / "events.jsonl"
            with open(out, "w") as sink:
                done = subprocess.run([sys.executable, "-m", "edge.fleet.cli", *base, "pull", "c1", "--after", "10", "--through", "2100"],
                                      stdout=sink, stderr=subprocess.PIPE, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            pulled = [json.loads(line) for line in out.read_text().splitlines()]
            journal = {e.seq: e.id for e in gateway.journaled()}
            assert [e["seq"] for e in pulled] == list(range(11, 2101))  # three pages of at most 1000
            assert all(journal[e["seq"]] == e["id"] for e in pulled)
            assert json.loads(done.stderr.strip().splitlines()[-1])["events"] == 2090

            result = fleet(*base, "command", "c1", "status.snapshot")
            assert result.returncode == 0, result.stderr
            answer = json.loads(result.stdout)
            assert answer["outcome"] == "done" and answer["detail"]["head_seq"] >= 2500
            unknown = fleet(*base, "command", "c1", "door.unlock", "--arg", "door=lobby", "--arg", "seconds=5")
            assert unknown.returncode == 1 and json.loads(unknown.stdout)["outcome"] == "unknown_command"

            changes = tmp_path / "changes.jsonl"
            card = {"key": "ab" * 32, "tenant": "t-301", "valid_from": "2026-01-01", "valid_until": "2027-01-01",
                    "paid_through": "2026-12-31"}
            changes.write_text(json.dumps({"op": "upsert", "credential": card}) + "\n")
            pushed = fleet(*base, "credentials", "push", "c1", str(changes), "--version", "1")
            assert pushed.returncode == 0, (pushed.stdout, pushed.stderr)
            assert json.loads(pushed.stdout)["applied"] is True
        finally:
            gateway.stop()
    kinds = [e.kind for e in gateway.journaled()]
    assert "credentials.applied" in kinds and kinds.count("command.executed") == 2


def test_status_and_gaps_read_what_the_workers_stored(tmp_path, postgres, cloud_keys):
    private, public = cloud_keys
    with Broker() as broker:
        (gateway,) = prepared(tmp_path, broker.port, public, 800, "s1")
        with Ingest(tmp_path, broker.port, postgres.dsn, 1, private), gateway:
            until(lambda: query(postgres.dsn, "SELECT watermark FROM buildings WHERE building='s1'") and
                  query(postgres.dsn, "SELECT watermark FROM buildings WHERE building='s1'")[0][0] >= 800, 60)
            # the workers applied the migrations at start, once: a second run applies nothing
            migrated = fleet("--db", postgres.dsn, "migrate")
            assert migrated.returncode == 0 and json.loads(migrated.stdout) == {"applied": []}, migrated.stderr
            names = [n for (n,) in query(postgres.dsn, "SELECT name FROM schema_migrations ORDER BY name")]
            assert names == sorted(p.name for p in (REPO / "fleet" / "migrations").glob("*.sql"))
            status = fleet("--db", postgres.dsn, "status")
            assert status.returncode == 0, status.stderr
            row = json.loads(status.stdout)
            assert row["building"] == "s1" and row["online"] is True and row["stored_through"] >= 800
            assert row["open_gaps"] == 0 and row["quarantined"] == 0 and row["last_seen_s_ago"] < 120
            # a range the gateway no longer holds is recorded absent once, not asked for forever
            query_absent = "INSERT INTO absent (building, first_seq, last_seq, reason) VALUES ('s1', 100000, 100009, 'disk_cap')"
            import psycopg
            with psycopg.connect(postgres.dsn) as conn:
                conn.execute(query_absent)
            gaps = fleet("--db", postgres.dsn, "gaps", "s1")
            assert gaps.returncode == 0, gaps.stderr
            rows = [json.loads(line) for line in gaps.stdout.splitlines()]
            assert rows == [{**rows[0], "building": "s1", "first_seq": 100000, "last_seq": 100009, "state": "absent",
                             "reason": "disk_cap"}]
