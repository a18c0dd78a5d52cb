"""`edge run` on a state disk that refuses writes: full or read-only at the start, or turned
read-only by the kernel under the running daemon (ext4 errors=remount-ro, as a failing SD card).
Doors and fire release keep working, every part that keeps a file there runs degraded and says
so, the technician's `edge fire reset` reaches the daemon through the runtime dir, the cloud hears
the journal's alarm while the disk refuses, and a stop loses nothing that a spill place takes and
never lets a seq be given twice.

Real filesystems (journal_disk.py): a tmpfs filled or remounted read-only before the start, a
loop-mounted ext4 failed under the daemon. Nothing binds a fixed port.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge.drivers.modbus.profile import load_profile
from edge.events import Kind
from edge.doors.kinds import DoorKind
from edge.journal import EventQuery, read_events
from edge.uplink.cursor import SyncCursor
from edge.hil.broker import Broker
from edge.hil.modbus_sim import SimulatedDevice

from conftest import REPO, Daemon, building, doors_io, edge, io_lock, one_circuit
from field_rig import SimulatorThread, devices, journal_until
from journal_disk import Ext4Disk, SmallDisk, mount_ext4_disk, mount_small_disk
from uplink_rig import open_cloud, until, uplink_section

from edge.hil.cloud import generate_keys

B = "test-house"
DIO8 = REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"


def points_config(write_config, building_dir: Path, state: Path, run: Path, *, bus_port: int, broker_port: int | None = None,
            journal: Path | None = None) -> Path:
    """A front door released by the fire panel's input, the status server on a port the kernel picks,
    the runtime dir `run` and, with a broker, the uplink."""
    house = building({"state_dir": str(state), "runtime_dir": str(run), "http": {"port": 0}}, doors_io(bus_port, poll_s=0.1),
                     {"doors": [{"name": "front", "egress": True, "lock": io_lock(1)}], "fire_alarm": "doors-io.input_8"})
    if journal is not None:
        house["journal"] = {"path": str(journal)}
    if broker_port is not None:
        if not (building_dir / "cloud.pub").exists():
            generate_keys(building_dir)
        house |= uplink_section(broker_port)
    return write_config(house)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _healthz(run: Path) -> tuple[int, dict] | None:
    """GET /healthz at the address the status server wrote to the runtime dir; None before it did."""
    try:
        url = json.loads((run / "http.json").read_text())["url"]
    except (OSError, ValueError, KeyError):
        return None
    try:
        with urllib.request.urlopen(url + "healthz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def _fire_then_reset(io: SimulatedDevice, config: Path) -> subprocess.CompletedProcess:
    """The panel signals fire, the front door is released; the panel clears; the technician resets."""
    io.set_value("input_8", True)
    journal_until(lambda: io.value_of("relay_1") is True, 30)
    io.set_value("input_8", False)
    return journal_until(lambda: (r := edge("fire", "reset", "--operator", "tech-7", "--config", str(config))).returncode == 0 and r, 30)


@pytest.fixture
def small_disk(tmp_path: Path):
    yield from mount_small_disk(tmp_path / "disk", size="1m")


@pytest.mark.parametrize("refuse, uplink_db", [("read_only", False), ("fill", False), ("read_only", True)],
                         ids=["read-only", "full", "read-only-with-uplink-db"])


def test_edge_run_on_a_refusing_state_disk_starts_releases_on_fire_and_answers_a_reset(
        write_config, building_dir: Path, tmp_path: Path, small_disk: SmallDisk, refuse: str, uplink_db: bool):
    """F1 (the uplink's cursor ended `edge run` at start) and F2 (the status server restarted in a
    loop on http.json; the control socket could not be made, so no fire reset reached the daemon)."""
    run = tmp_path / "run"  # another filesystem: systemd's RuntimeDirectory under /run in production
    log = building_dir / "daemon.log"
    io = SimulatedDevice(load_profile(DIO8), 1)
    with Broker() as broker, SimulatorThread([io]) as port:
        config = points_config(write_config, building_dir, small_disk.mount, run, bus_port=port, broker_port=broker.port)
        if uplink_db:
            cursor = SyncCursor(small_disk.mount / "uplink.db")
            cursor.opened()  # the file as a previous run left it
            cursor.close()
        getattr(small_disk, refuse)()
        daemon = Daemon(config, log=log, stop_s=15).start()
        try:
            health = journal_until(lambda: _healthz(run), 30)
            reset = _fire_then_reset(io, config)
            secured = journal_until(lambda: io.value_of("relay_1") is False, 10)
            health = _healthz(run)
            alive = daemon.poll() is None
            socket_in_run = (run / "control.sock").is_socket()
        finally:
            code = daemon.stop()
    assert alive and code == 0, log.read_text()[-3000:]
    assert "front secured" in reset.stdout and secured
    assert socket_in_run, "the control socket lives in the runtime dir"
    status, body = health
    assert status == 503 and any("journal unavailable" in p for p in body["problems"]), body
    lines = _log(log)
    failed = [line for line in lines if "worker" in line.get("event", "") and "fail" in line.get("event", "")]
    assert not failed, failed
    assert any(line["event"].startswith("uplink state file unavailable") or line["event"].startswith("state file not written")
               for line in lines) or uplink_db


def test_a_full_state_disk_never_stops_an_over_current_trip(write_config, building_dir: Path, tmp_path: Path, small_disk: SmallDisk):
    """points.json's ENOSPC ended the field-points task group: the trip came late or never."""
    monitor, breaker, _ = devices()  # 10 A on a closed breaker
    journal = tmp_path / "journal" / "journal.db"  # the journal on a disk of its own: only the state files are refused
    small_disk.fill()
    with SimulatorThread([monitor, breaker]) as port:
        config = write_config(building(one_circuit(port), {"state_dir": str(small_disk.mount), "runtime_dir": str(tmp_path / "run"),
                                                           "http": {"enabled": False}, "journal": {"path": str(journal)}}))
        daemon = Daemon(config, log=building_dir / "daemon.log", stop_s=15).start()
        try:
            refused = journal_until(lambda: journal.exists() and [e for e in read_events(journal, EventQuery(kinds=(Kind.STATE_FILE_REFUSED,), limit=None))
                                                          if Path(e.body["file"]).name == "points.json"], 30)
            monitor.set_value("current_a", 45.0)
            journal_until(lambda: read_events(journal, EventQuery(kinds=("power.trip_confirmed",))), 30)
            opened = breaker.value_of("closed") is False
        finally:
            code = daemon.stop()
    assert code == 0 and opened
    assert any(Path(r.body["file"]).name == "points.json" and r.body["fault"] == "disk_full" for r in refused), refused
    failures = read_events(journal, EventQuery(kinds=(Kind.TASK_FAILED,), limit=None))
    assert not failures, [f.body for f in failures]
    files = [e.body["file"] for e in read_events(journal, EventQuery(kinds=(Kind.STATE_FILE_REFUSED,), limit=None))]
    assert sum(Path(f).name == "points.json" for f in files) == 1, "one fault for the streak, not one per snapshot"


@pytest.fixture
def ext4(tmp_path: Path):
    yield from mount_ext4_disk(tmp_path / "state", size_mb=48)  # above /healthz's free-space floor


def test_a_state_disk_turned_read_only_under_the_daemon(write_config, building_dir: Path, tmp_path: Path, ext4: Ext4Disk):
    """F3 and F4: /healthz says so at once, the cloud hears alarm.journal_unavailable while the disk
    refuses, the fire and its reset still work, the stop spills what is held to the runtime dir and
    the next start writes it with the seqs it was given, and gives none of them again."""
    run = tmp_path / "run"
    log = building_dir / "daemon.log"
    journal = ext4.mount / "journal.db"
    io = SimulatedDevice(load_profile(DIO8), 1)

    async def scenario():
        with Broker() as broker, SimulatorThread([io]) as port:
            config = points_config(write_config, building_dir, ext4.mount, run, bus_port=port, broker_port=broker.port)
            cloud = open_cloud(building_dir, broker.port)
            await cloud.start()
            daemon = Daemon(config, log=log, stop_s=15).start()
            try:
                await until(lambda: cloud.book(B).status.get("state") == "online", timeout_s=30)
                await until(lambda: any(e["kind"] == Kind.GATEWAY_STARTED for e in cloud.events(B)), timeout_s=30)
                before = read_events(journal, EventQuery(limit=None))
                await until(lambda: (h := _healthz(run)) is not None and h[0] == 200, timeout_s=30)
                ext4.fail()
                io.set_value("input_8", True)  # a fire: the first event the refusing disk meets
                await until(lambda: io.value_of("relay_1") is True, timeout_s=30)
                await until(lambda: (h := _healthz(run)) is not None and h[0] == 503
                            and any("journal unavailable" in p for p in h[1]["problems"]), timeout_s=30)
                await until(lambda: any(e["kind"] == Kind.JOURNAL_UNAVAILABLE for e in cloud.events(B)), timeout_s=30)
                heard = [e for e in cloud.events(B) if e["kind"] == Kind.JOURNAL_UNAVAILABLE]
                reset = await asyncio.to_thread(_fire_then_reset, io, config)
                code = await asyncio.to_thread(daemon.stop)
                spills = sorted(run.glob("journal.db.spill-*.json"))
                held = [row for s in spills for row in json.loads(s.read_text())["events"]]

                await asyncio.to_thread(ext4.repair)
                daemon = Daemon(config, log=log, stop_s=15).start()
                await until(lambda: journal.exists() and any(e.kind == Kind.GATEWAY_STARTED and e.seq > max(r["seq"] for r in held)
                                                             for e in read_events(journal, EventQuery(limit=None))), timeout_s=30)
                await until(lambda: not list(run.glob("journal.db.spill-*")), timeout_s=30)
                second = await asyncio.to_thread(daemon.stop)
            finally:
                daemon.kill()
                await cloud.stop()
        return before, heard, reset, code, held, second

    before, heard, reset, code, held, second = asyncio.run(scenario())
    assert code == 0 and second == 0, log.read_text()[-3000:]
    assert "front secured" in reset.stdout
    (alarm,) = heard
    assert alarm["seq"] > before[-1].seq and alarm["body"]["fault"] in ("read_only", "io_error")
    kinds = {row["kind"] for row in held}
    assert {Kind.JOURNAL_UNAVAILABLE, DoorKind.FIRE_RELEASE, DoorKind.FIRE_RESET, Kind.GATEWAY_STOPPED} <= kinds, kinds
    stored = read_events(journal, EventQuery(limit=None))
    by_id = {e.id: e.seq for e in stored}
    assert all(by_id.get(row["id"]) == row["seq"] for row in held), "every held event written under the seq it was given"
    assert by_id[alarm["id"]] == alarm["seq"], "the alarm the cloud heard is in the journal under the same seq"
    assert len({e.seq for e in stored}) == len(stored), "no seq given twice"
    assert [e.seq for e in stored] == sorted(e.seq for e in stored)


def test_a_care_watch_set_on_a_read_only_state_disk_runs_from_memory_and_says_it_is_not_saved(tmp_path: Path, small_disk: SmallDisk):
    from edge.community.inactivity import InactivityWatch
    from edge.journal import Journal

    small_disk.read_only()

    async def scenario():
        journal = await Journal.open(tmp_path / "journal.db")
        watch = InactivityWatch(small_disk.mount, "Asia/Shanghai", journal, None, lambda: None, {"warden"}, 60)
        answers = [await watch.set_care({"op": "care.set", "operator": "op-1", "tenant": f"t{n}", "limit_hours": 12,
                                         "contact": "warden"}) for n in range(2)]
        await journal.close()
        return watch, answers

    watch, answers = asyncio.run(scenario())
    assert all(a["ok"] and a["saved"] is False for a in answers), answers
    assert set(watch.cares) == {"t0", "t1"}, "the watch runs from memory"
    faults = read_events(tmp_path / "journal.db", EventQuery(kinds=(Kind.STATE_FILE_REFUSED,), limit=None))
    assert len(faults) == 1 and faults[0].body["fault"] == "read_only" and faults[0].body["file"].endswith("care.json")


def test_the_credential_store_on_a_refusing_disk_serves_cards_from_a_copy_and_refuses_updates(tmp_path: Path, small_disk: SmallDisk):
    import secrets

    from edge.doors.credentials.credential import Credential
    from edge.doors.credentials.store import CredentialStore, CredentialStoreUnavailable

    secret = secrets.token_bytes(32)
    path = small_disk.mount / "credentials.db"
    with CredentialStore.open(path, secret) as store:
        key = store.key_for(b"\x04\xa1\xb2\xc3")
        store.upsert(Credential(key=key, tenant="t-101", valid_from="2026-01-01T00:00:00Z", valid_until="2036-01-01T00:00:00Z",
                                paid_through="2036-01-01"))
    small_disk.read_only()
    store = CredentialStore.open(path, secret)
    try:
        assert store.read_only is not None and "the state disk refuses writes" in store.read_only
        assert store.lookup(b"\x04\xa1\xb2\xc3").tenant == "t-101", "cards keep working"
        with pytest.raises(CredentialStoreUnavailable, match="read-only"):
            store.revoke(key)
    finally:
        store.close()
