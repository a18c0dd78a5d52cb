"""The credential store on a real SQLite file: keys, imports, versions, damage."""

import hashlib
import hmac
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge.doors.clock import TrustedTime
from edge.doors.credentials.credential import Credential, CredentialStatus
from edge.doors.credentials.card_import import CredentialImportError, import_cards
from edge.doors.credentials.store import (
    CredentialStore,
    CredentialStoreUnavailable,
    Enrolment,
    Removal,
    VersionReport,
    parse_serial,
)
from edge.doors.decision import decide
from edge.doors.policy import DoorPolicy, DoorState
from edge.doors.reason import Reason

SECRET = bytes.fromhex("5e" * 32)
SERIALS = ["04A1B2C3D4E5F6", "0499887766554433", "DEADBEEF4711"]
HEADER = "serial,tenant,valid_from,valid_until,paid_through,doors,door_groups,schedule,id_number"
LOBBY = DoorPolicy("lobby", ZoneInfo("Europe/Berlin"), frozenset({"entrances"}), frozenset({"lobby-keypad"}))
NOON = TrustedTime(datetime(2025, 5, 14, 10, 0, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path):
    with CredentialStore.open(tmp_path / "credentials.db", SECRET) as opened:
        yield opened


def enrolment(serial: str = SERIALS[0], **changes: object) -> Enrolment:
    fields: dict[str, object] = dict(
        serial=serial, tenant="tenant-7", doors=["lobby"], valid_from="2025-01-01",
        valid_until="2025-12-31", paid_through="2025-06-30",
    )  # fmt: skip
    fields.update(changes)
    return Enrolment.model_validate(fields)


def keyed(key_byte: str, tenant: str = "tenant-cloud", **changes: object) -> Credential:
    fields: dict[str, object] = dict(
        key=key_byte * 32, tenant=tenant, door_groups=["entrances"], valid_from="2025-01-01",
        valid_until="2025-12-31", paid_through="2025-12-31",
    )  # fmt: skip
    fields.update(changes)
    return Credential.model_validate(fields)


def test_keys_are_hmac_sha256_of_the_serial_bytes(store):
    serial = bytes.fromhex(SERIALS[0])
    assert store.key_for(serial) == hmac.new(SECRET, serial, hashlib.sha256).hexdigest()
    issued = store.issue(enrolment())
    assert issued.key == store.key_for(serial)
    assert store.lookup(serial) == issued
    assert store.lookup(bytes.fromhex(SERIALS[1])) is None
    assert parse_serial("04:a1:b2:c3:d4:e5:f6") == serial


def test_raw_serials_and_id_numbers_never_reach_the_file(tmp_path):
    path = tmp_path / "credentials.db"
    csv_file = tmp_path / "tenants.csv"
    csv_file.write_text(f"{HEADER}\n{SERIALS[1]},tenant-8,2025-01-01,2025-12-31,2025-06-30,lobby,,,X9876543\n")
    jsonl_file = tmp_path / "tenants.jsonl"
    jsonl_file.write_text(json.dumps(dict(
        serial=SERIALS[2], tenant="tenant-9", doors=["lobby"], valid_from="2025-01-01",
        valid_until="2025-12-31", paid_through="2025-06-30", id_number="Z1122334455",
    )) + "\n")  # fmt: skip
    with CredentialStore.open(path, SECRET) as store:
        store.issue(enrolment(id_number="P 5544-3322-11", pin="73915046"))
        assert import_cards(store, csv_file).imported == 1
        assert import_cards(store, jsonl_file).imported == 1
        assert store.lookup(bytes.fromhex(SERIALS[2])).id_last4 == "4455"
        files = [p for p in tmp_path.iterdir() if p.name.startswith("credentials.db")]
        raw = b"".join(p.read_bytes() for p in files)
    raw += path.read_bytes()  # after close: WAL checkpointed into the main file
    for serial in SERIALS:
        for form in (bytes.fromhex(serial), serial.lower().encode(), serial.upper().encode()):
            assert form not in raw
    for secret_text in (b"554433221", b"9876543", b"1122334455", b"73915046"):
        assert secret_text not in raw


def test_store_reopens_with_its_credentials_and_version(tmp_path):
    path = tmp_path / "credentials.db"
    with CredentialStore.open(path, SECRET) as store:
        issued = store.issue(enrolment(schedule="mon-fri 08:00-18:00", pin="2468"))
        store.apply_change_set(7, [keyed("aa")])
    with CredentialStore.open(path, SECRET) as store:
        assert store.version == 7
        assert store.get(issued.key) == issued
        assert [c.tenant for c in store.list()] == ["tenant-7", "tenant-cloud"]


def test_pin_verifies_right_and_rejects_wrong(store):
    store.issue(enrolment(pin="2468"))
    credential = store.lookup(bytes.fromhex(SERIALS[0]))
    assert credential.pin_hash.n == 2**14
    assert credential.pin_hash.matches("2468")
    assert not credential.pin_hash.matches("2469")
    assert decide(credential, LOBBY, "lobby-keypad", NOON, DoorState.secured, "2468").reason is Reason.granted
    assert decide(credential, LOBBY, "lobby-keypad", NOON, DoorState.secured, "8642").reason is Reason.pin_wrong


def test_revoke_keeps_the_record_so_the_reason_is_revoked(store):
    issued = store.issue(enrolment())
    assert store.revoke(issued.key).status is CredentialStatus.revoked
    assert decide(store.lookup(bytes.fromhex(SERIALS[0])), LOBBY, "in", NOON, DoorState.secured).reason is Reason.revoked
    with pytest.raises(LookupError, match="no credential"):
        store.revoke("00" * 32)


def test_csv_import_reports_bad_rows_by_line_and_keeps_good_ones(store, tmp_path):
    path = tmp_path / "tenants.csv"
    path.write_text(
        f"{HEADER}\n"
        f"{SERIALS[0]},tenant-1,2025-01-01,2025-12-31,2025-06-30,lobby;gym,entrances,\"mon-fri 08:00-18:00, sat 09:00-12:00\",\n"
        "XYZ,tenant-2,2025-01-01,2025-12-31,2025-06-30,lobby,,,\n"
        "\n"
        f"{SERIALS[1]},tenant-3,2025-01-01,2025-13-31,2025-06-30,lobby,,,\n"
        f"{SERIALS[2]},tenant-4,2025-01-01,2025-12-31,2025-06-30,,entrances,fri 22:00-02:00,\n"
        f"{SERIALS[0].lower()},tenant-5,2025-01-01,2025-12-31,2025-06-30,lobby,,,\n"
        f"{SERIALS[2]},tenant-6,2025-01-01,2025-12-31,2025-06-30,lobby,,,,extra\n"
        f"{SERIALS[1]},tenant-7,2025-01-01,2025-12-31,2025-06-30,lobby,,,\n"
    )
    report = import_cards(store, path)
    assert report.imported == 2
    lines = {error.line: error.message for error in report.errors}
    assert sorted(lines) == [3, 5, 6, 7, 8]
    assert "serial" in lines[3] and "XYZ" not in lines[3]
    assert "valid_until" in lines[5]
    assert "overnight" in lines[6]
    assert "same card as line 2" in lines[7]
    assert "more cells" in lines[8]
    first = store.lookup(bytes.fromhex(SERIALS[0]))
    assert first.doors == {"lobby", "gym"} and first.door_groups == {"entrances"}
    assert str(first.schedule) == "mon-fri 08:00-18:00, sat 09:00-12:00"
    assert store.lookup(bytes.fromhex(SERIALS[1])).tenant == "tenant-7"


def test_jsonl_import_reports_bad_rows_by_line(store, tmp_path):
    good = dict(serial=SERIALS[0], tenant="tenant-1", doors=["lobby"], valid_from="2025-01-01",
                valid_until="2025-12-31", paid_through="2025-06-30", status="suspended")  # fmt: skip
    path = tmp_path / "tenants.jsonl"
    path.write_text(
        "\n".join([
            json.dumps(good),
            "{not json",
            json.dumps([1, 2]),
            json.dumps({**good, "serial": SERIALS[1], "paid_through": "soon"}),
            json.dumps({**good, "serial": SERIALS[2], "colour": "blue"}),
            json.dumps({**good, "serial": SERIALS[2], "status": "evicted"}),
        ])
    )  # fmt: skip
    report = import_cards(store, path)
    assert report.imported == 1
    lines = {error.line: error.message for error in report.errors}
    assert sorted(lines) == [2, 3, 4, 5, 6]
    assert "not valid JSON" in lines[2] and "JSON object" in lines[3]
    assert "paid_through" in lines[4] and "colour" in lines[5] and "status" in lines[6]
    assert store.lookup(bytes.fromhex(SERIALS[0])).status is CredentialStatus.suspended


def test_import_keeps_a_pin_set_earlier(store, tmp_path):
    store.issue(enrolment(pin="2468"))
    path = tmp_path / "rent-update.csv"
    path.write_text(f"{HEADER}\n{SERIALS[0]},tenant-7,2025-01-01,2025-12-31,2025-09-30,lobby,,,\n")
    assert import_cards(store, path).imported == 1
    credential = store.lookup(bytes.fromhex(SERIALS[0]))
    assert credential.paid_through == date(2025, 9, 30) and credential.pin_hash is not None


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("tenants.csv", "serial,tenant,colour\n", "unknown column 'colour'"),
        ("tenants.csv", "", "empty file"),
        ("tenants.xlsx", "serial\n", "unknown import format"),
        ("tenants.jsonl", b"{}\n\xff\xfe\n", "tenants.jsonl:2: not UTF-8"),
    ],
)
def test_unreadable_import_files_are_clear_errors(store, tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(CredentialImportError, match=message):
        import_cards(store, path)


def test_an_import_file_beyond_the_cap_is_refused_before_it_is_read_whole(store, tmp_path):
    from edge.doors.credentials.card_import import MAX_IMPORT_BYTES

    path = tmp_path / "estate.csv"
    with path.open("wb") as file:
        file.write((HEADER + "\n").encode())
        file.truncate(MAX_IMPORT_BYTES + 1)  # sparse: the size without the disk
    with pytest.raises(CredentialImportError, match="larger than 32 MiB"):
        import_cards(store, path)


def test_ten_thousand_rows_import_in_one_batch(store, tmp_path):
    path = tmp_path / "building.csv"
    rows = [f"{i:08x},tenant-{i},2025-01-01,2025-12-31,2025-06-30,{i % 40};lobby,entrances,mon-sun 06:00-23:00,"
            for i in range(10_000)]  # fmt: skip
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    report = import_cards(store, path)
    assert report.imported == 10_000 and report.errors == ()
    assert store.lookup(bytes.fromhex("00002710")) is None
    assert store.lookup(bytes.fromhex(f"{9_999:08x}")).tenant == "tenant-9999"


def test_change_sets_apply_once_and_in_order(tmp_path):
    path = tmp_path / "credentials.db"
    with CredentialStore.open(path, SECRET) as store:
        assert store.apply_change_set(1, [keyed("aa"), keyed("bb")]) == VersionReport(1, True, 1)
        assert store.apply_change_set(1, [Removal("aa" * 32)]) == VersionReport(1, False, 1)
        assert store.apply_change_set(0, [keyed("cc")]) == VersionReport(0, False, 1)
        assert store.get("aa" * 32) is not None and store.get("cc" * 32) is None
        changed = keyed("bb", paid_through="2025-03-31")
        assert store.apply_change_set(3, [Removal("aa" * 32), changed]).applied
    with CredentialStore.open(path, SECRET) as store:
        assert store.version == 3
        assert store.get("aa" * 32) is None
        assert store.get("bb" * 32) == changed


def test_a_failing_change_set_leaves_nothing_behind(tmp_path):
    path = tmp_path / "credentials.db"
    with CredentialStore.open(path, SECRET) as store:
        store.apply_change_set(1, [keyed("aa")])
        with pytest.raises(TypeError, match="Credential or a Removal"):
            store.apply_change_set(2, [Removal("aa" * 32), keyed("bb"), {"key": "cc" * 32}])
        assert store.version == 1 and store.get("aa" * 32) is not None and store.get("bb" * 32) is None
    with CredentialStore.open(path, SECRET) as store:
        assert store.version == 1 and [c.key for c in store.list()] == ["aa" * 32]


def test_snapshot_replaces_everything_atomically(tmp_path):
    path = tmp_path / "credentials.db"
    with CredentialStore.open(path, SECRET) as store:
        store.issue(enrolment())
        store.apply_change_set(4, [keyed("aa")])
        assert store.replace_snapshot(9, [keyed("bb"), keyed("cc")]) == VersionReport(9, True, 9)
        assert {c.key for c in store.list()} == {"bb" * 32, "cc" * 32}
        assert store.replace_snapshot(8, [keyed("dd")]) == VersionReport(8, False, 9)
        with pytest.raises(ValueError, match="twice"):
            store.replace_snapshot(10, [keyed("dd"), keyed("dd")])
        assert store.version == 9
    with CredentialStore.open(path, SECRET) as store:
        assert store.version == 9 and {c.key for c in store.list()} == {"bb" * 32, "cc" * 32}
        assert store.lookup(bytes.fromhex(SERIALS[0])) is None


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "credentials.db"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    with pytest.raises(CredentialStoreUnavailable, match="credentials.db"):
        CredentialStore.open(path, SECRET)


def test_damaged_pages_are_a_clear_error(tmp_path):
    path = tmp_path / "credentials.db"
    with CredentialStore.open(path, SECRET) as store:
        store.replace_snapshot(1, [keyed(f"{i:02x}", tenant=f"tenant-{i}") for i in range(200)])
    data = bytearray(path.read_bytes())
    assert len(data) > 4 * 4096
    data[4096 : len(data)] = b"\xa5" * (len(data) - 4096)  # every page after the first
    path.write_bytes(bytes(data))
    with pytest.raises(CredentialStoreUnavailable):
        CredentialStore.open(path, SECRET)


def test_wrong_building_secret_is_refused(tmp_path):
    path = tmp_path / "credentials.db"
    CredentialStore.open(path, SECRET).close()
    with pytest.raises(CredentialStoreUnavailable, match="different building secret"):
        CredentialStore.open(path, b"another-building-secret-32-bytes")


def test_locked_store_is_a_clear_error(tmp_path):
    path = tmp_path / "credentials.db"
    store = CredentialStore.open(path, SECRET, busy_timeout=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(CredentialStoreUnavailable, match="locked"):
            store.issue(enrolment())
        assert store.lookup(bytes.fromhex(SERIALS[0])) is None
        with pytest.raises(CredentialStoreUnavailable, match="locked"):
            CredentialStore.open(path, SECRET, busy_timeout=0.1)
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(CredentialStoreUnavailable, match="unable to open"):
        CredentialStore.open(tmp_path / "no-such-dir" / "credentials.db", SECRET)


def test_short_secret_is_refused(tmp_path):
    with pytest.raises(ValueError, match="16 bytes"):
        CredentialStore.open(tmp_path / "credentials.db", b"short")


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "credentials.db"
    with CredentialStore.open(path, SECRET) as store:

        def issue_many(worker: int) -> None:
            for i in range(50):
                store.issue(enrolment(serial=f"{worker:02x}{i:04x}", tenant=f"tenant-{worker}-{i}"))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(issue_many, range(4)))
        assert len(store.list()) == 200
    with CredentialStore.open(path, SECRET) as store:
        assert len(store.list()) == 200
