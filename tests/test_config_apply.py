"""A building config from the fleet (edge/config/apply.py): `edge-fleet config push` against a real
mosquitto and `edge run` as a subprocess. A signed valid file is applied, answered and kept after its
watch; unsigned, badly signed, oversized and invalid pushes change nothing; a signed file that breaks
the building (a reader on a port that is not there: /healthz 503) is rolled back by the gateway on
its own; `config get` shows secrets as references only; a crash loop after an apply is undone by
`edge run` before it loads the config."""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edge.config.building import load
from edge.config.files import ConfigFiles, Watch, at_start, digest_of, note_clean_stop
from edge.fleet import keys
from edge.hil.broker import Broker
from edge.hil.waiting import until_sync
from edge.journal import EventQuery, read_events
from edge.uplink.signing import DownlinkKind, Envelope, seal

from conftest import MINIMAL, Daemon, as_yaml, building

B = "test-house"
MQTT_PASSWORD = "mqtt-" + secrets.token_hex(12)


def fleet(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.fleet.cli", *args], capture_output=True, text=True, timeout=timeout_s)


def building_text(port: int, public: Path, name: str = "", extra: dict | None = None, http: dict | None = None) -> str:
    """The file the fleet pushes: the building (`name`d if given) with its uplink to the mosquitto at
    `port` as user edge, the cloud's key `public`, `http` (a free port without), `extra` merged in."""
    house = building({"uplink": {"enabled": True, "host": "127.0.0.1", "port": port, "batch_ms": 10, "keepalive_s": 5, "username": "edge",
                                 "password": {"file": "secrets/mqtt.pass"}, "cloud_public_key": str(public)},
                      "http": http or {"port": 0}}, extra or {})
    if name:
        house["building"] = {"id": house["building"]["id"], "name": name} | house["building"]
    return as_yaml(house)


class Site(Daemon):
    """`edge run` in a folder of its own; the folder, its config and its journal."""

    def __init__(self, root: Path, broker: Broker, public: Path) -> None:
        self.dir = root / "etc"
        (self.dir / "secrets").mkdir(parents=True)
        (self.dir / "secrets" / "building.key").write_text(secrets.token_hex(32))
        (self.dir / "secrets" / "mqtt.pass").write_text(MQTT_PASSWORD)
        super().__init__(self.dir / "building.yaml", log=root / "daemon.log", stop_s=15)
        self.config.write_text(building_text(broker.port, public))
        self.files = ConfigFiles(self.config)
        self.start()

    def events(self, kind: str | None = None) -> list:
        found = read_events(load(self.config).journal_path, EventQuery(limit=None))
        return [e for e in found if kind is None or e.kind == kind]


@pytest.fixture
def site(tmp_path):
    private, public = keys.generate(tmp_path / "cloud")
    with Broker() as broker:
        daemon = Site(tmp_path, broker, public)
        base = ("--broker", f"127.0.0.1:{broker.port}", "--key", str(private), "--timeout", "30")
        try:
            yield daemon, broker, base, private, public
        finally:
            daemon.stop()


def results(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def running(base: tuple[str, ...]) -> str | None:
    """The digest the building says it runs (a command sent while it restarts is lost: None, ask again)."""
    got = fleet(*base[:-1], "8", "config", "get", B, "--json")
    return results(got.stdout)[0]["detail"]["digest"] if got.returncode == 0 else None


def test_a_signed_config_is_applied_answered_watched_and_kept_and_config_get_shows_no_secret(site, tmp_path):
    daemon, broker, base, private, public = site
    original = daemon.config.read_bytes()
    pushed = tmp_path / "pushed.yaml"
    pushed.write_text(building_text(broker.port, public, name="Hillside Court 7"))

    done = fleet(*base, "config", "push", B, str(pushed), "--watch-s", "4")
    assert done.returncode == 0, (done.stdout, done.stderr, daemon.log.read_text()[-3000:])
    answer, verdict = results(done.stdout)
    assert answer["command"] == "config.apply" and answer["outcome"] == "done"
    detail = answer["detail"]
    assert detail["ok"] is True and detail["version"] == 1 and detail["restart"] is True  # the building's name: a restart
    assert detail["digest"] == digest_of(pushed.read_bytes()) and detail["previous_digest"] == digest_of(original)
    assert verdict["kind"] == "config.kept" and verdict["body"]["version"] == 1
    assert daemon.config.read_bytes() == pushed.read_bytes()
    assert daemon.files.previous.read_bytes() == original
    assert not daemon.files.watch.exists()
    assert daemon.process.poll() is None  # executed itself again, same PID

    again = fleet(*base, "config", "push", B, str(pushed), "--version", "1")  # a redelivery changes nothing
    assert again.returncode == 0 and results(again.stdout)[0]["detail"]["redelivery"] is True

    got = fleet(*base, "config", "get", B, "--json")
    assert got.returncode == 0, got.stderr
    running = results(got.stdout)[0]["detail"]
    assert running["digest"] == detail["digest"] and running["version"] == 1
    assert running["config"]["building"]["name"] == "Hillside Court 7"
    assert running["config"]["building"]["secret"] == {"file": str(daemon.dir / "secrets" / "building.key")}
    assert running["config"]["uplink"]["password"] == {"file": str(daemon.dir / "secrets" / "mqtt.pass")}
    secret = (daemon.dir / "secrets" / "building.key").read_text()
    assert secret not in got.stdout and MQTT_PASSWORD not in got.stdout
    as_yaml = fleet(*base, "config", "get", B)
    assert as_yaml.returncode == 0 and "name: Hillside Court 7" in as_yaml.stdout and MQTT_PASSWORD not in as_yaml.stdout

    kinds = [e.kind for e in daemon.events()]
    assert kinds.count("config.applied") == 1 and kinds.count("config.kept") == 1 and "config.rolled_back" not in kinds


def test_unsigned_badly_signed_oversized_and_invalid_pushes_change_nothing(site, tmp_path):
    daemon, broker, base, private, public = site
    original = daemon.config.read_bytes()
    assert fleet(*base, "config", "get", B).returncode == 0  # online, and answering
    text = building_text(broker.port, public, name="Changed By A Stranger")
    now = time.time()

    def envelope(body: dict) -> Envelope:
        return Envelope(str(DownlinkKind.CONFIG_APPLY), B, now, now + 300, secrets.token_hex(16), body)

    stranger = keys.load(keys.generate(tmp_path / "stranger")[0])
    unsigned = json.loads(seal(stranger, envelope({"version": 7, "yaml": text})))
    unsigned["sig"] = ""
    payloads = [
        json.dumps(unsigned).encode(),
        seal(stranger, envelope({"version": 8, "yaml": text})),  # signed, by the wrong key
        seal(keys.load(private), envelope({"version": 9, "yaml": text + "#" * (4 * 2**20)})),  # over the downlink's 4 MiB
    ]
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(f"edge/v1/{B}/config", payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
    until_sync(lambda: {e.body.get("reason") for e in daemon.events("security.downlink_refused")} >= {"unsigned", "bad_signature"},
               30, "the unsigned and the badly signed push refused")

    big = tmp_path / "big.yaml"  # signed, under the downlink's cap, over what check-config reads
    big.write_text(text + "#" * (2 * 2**20))
    refused_big = fleet(*base, "config", "push", B, str(big), "--version", "10")
    assert refused_big.returncode == 1
    assert "a building config is at most" in refused_big.stderr

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(building_text(broker.port, public, name="Changed By A Stranger", http={"port": "seventy"}, extra={"readers": [{"name": "r1", "protocol": "em4100"}]}))
    refused = fleet(*base, "config", "push", B, str(invalid), "--version", "11")
    assert refused.returncode == 1
    detail = results(refused.stdout)[0]["detail"]
    assert detail["ok"] is False and len(detail["problems"]) == 2
    lines = refused.stderr.splitlines()
    assert any(line.startswith(f"{daemon.config}:") and "http.port" in line for line in lines)
    assert any(line.startswith(f"{daemon.config}:") and "readers.0.port" in line for line in lines)

    assert daemon.config.read_bytes() == original
    assert not daemon.files.previous.exists() and not daemon.files.incoming.exists() and not daemon.files.applied.exists()
    kinds = [e.kind for e in daemon.events()]
    assert "config.applied" not in kinds and kinds.count("config.apply_refused") == 2
    assert kinds.count("gateway.started") == 1  # never restarted


def test_a_signed_config_that_breaks_the_building_is_rolled_back_by_the_gateway(site, tmp_path):
    daemon, broker, base, private, public = site
    original = daemon.config.read_bytes()
    broken = tmp_path / "broken.yaml"
    broken.write_text(building_text(broker.port, public, extra={
        "readers": [{"name": "lobby-reader", "protocol": "em4100", "port": str(tmp_path / "no-such-tty")}],
        "doors": [{"name": "lobby", "readers": ["lobby-reader"]}]}))

    done = fleet(*base, "config", "push", B, str(broken), "--watch-s", "8")
    assert done.returncode == 1, (done.stdout, done.stderr, daemon.log.read_text()[-3000:])
    answer, verdict = results(done.stdout)
    assert answer["outcome"] == "done" and answer["detail"]["ok"] is True  # valid: applied, then found broken
    assert verdict["kind"] == "config.rolled_back" and verdict["body"]["why"] == "health"
    assert any("reader lobby-reader offline" in reason for reason in verdict["body"]["reasons"])
    assert verdict["body"]["restored"] == digest_of(original)

    until_sync(lambda: daemon.config.read_bytes() == original, 10, "the previous file restored")
    assert daemon.files.failed.read_bytes() == broken.read_bytes()
    assert not daemon.files.watch.exists()
    until_sync(lambda: running(base) == digest_of(original), 60, "the restored file running")
    rolled = daemon.events("config.rolled_back")
    assert len(rolled) == 1 and rolled[0].body["version"] == 1


def test_a_crash_loop_after_an_apply_is_undone_by_edge_run_before_it_loads_the_config(tmp_path):
    config = tmp_path / "building.yaml"
    files = ConfigFiles(config)
    config.write_text("the new one\n")
    files.previous.write_text("the good one\n")
    Watch(version=3, nonce="n" * 32, digest=digest_of(b"the new one\n"), previous_digest=digest_of(b"the good one\n"),
          watch_s=120, deadline_at=time.time() + 120, restart=True).write(files.watch)

    note_clean_stop(files)  # the restart the apply planned: a stop, then a start
    assert at_start(config) is None
    assert Watch.read(files.watch).starts == 1 and config.read_text() == "the new one\n"
    note_clean_stop(files)  # systemctl restart: not a crash either
    assert at_start(config) is None
    assert at_start(config) is None  # it fell over once
    line = at_start(config)  # and again: a crash loop
    assert line is not None and "rolled back" in line
    assert config.read_text() == "the good one\n" and files.failed.read_text() == "the new one\n"
    watch = Watch.read(files.watch)
    assert watch.state == "rolled_back" and "crash loop" in watch.reasons[0]  # the gateway journals it once its journal opens
    assert at_start(config) is None and config.read_text() == "the good one\n"


def test_a_signed_config_that_cuts_the_building_off_the_fleet_is_rolled_back_without_a_status_server(site, tmp_path):
    daemon, broker, base, private, public = site
    original = daemon.config.read_bytes()
    with Broker() as elsewhere:  # a broker the building can reach, and the fleet never listens on
        pass
    lost = tmp_path / "lost.yaml"
    lost.write_text(building_text(elsewhere.port, public, http={"enabled": False}))

    done = fleet(*base, "config", "push", B, str(lost), "--watch-s", "6")
    assert done.returncode == 1, (done.stdout, done.stderr, daemon.log.read_text()[-3000:])
    answer, verdict = results(done.stdout)
    assert answer["detail"]["ok"] is True and answer["detail"]["restart"] is True
    assert verdict["kind"] == "config.rolled_back" and verdict["body"]["reasons"] == ["the uplink is not connected to the cloud"]
    assert daemon.config.read_bytes() == original and daemon.files.failed.read_bytes() == lost.read_bytes()
    assert daemon.process.poll() is None


def test_config_get_shows_a_secret_by_its_reference_and_withholds_any_field_named_like_one(building_dir, write_config, monkeypatch):
    from edge.config.apply import public_view

    monkeypatch.setenv("EDGE_TEST_MQTT_PASSWORD", "hunter2-" + secrets.token_hex(8))
    config = load(write_config(building({"uplink": {"username": "edge", "password": {"env": "EDGE_TEST_MQTT_PASSWORD"}}})))
    shown = public_view(config)
    assert shown["uplink"]["password"] == {"env": "EDGE_TEST_MQTT_PASSWORD"}
    assert shown["building"]["secret"] == {"file": str(building_dir / "secrets" / "building.key")}
    assert "hunter2" not in json.dumps(shown) and (building_dir / "secrets" / "building.key").read_text() not in json.dumps(shown)
    assert "journal" not in shown  # what the file leaves unset stays unset

    class Modem(config.uplink.__class__.__base__):  # a field named like a secret, held as plain text
        pin: str = "1234"
        sim_password: str | None = None

    assert public_view(Modem(pin="4321", sim_password="s3cret")) == {"pin": "(withheld)", "sim_password": "(withheld)"}


def test_a_daemon_that_keeps_falling_over_after_an_apply_is_rolled_back_by_edge_run(site, tmp_path):
    daemon, broker, base, private, public = site
    original = daemon.config.read_bytes()
    pushed = tmp_path / "pushed.yaml"
    pushed.write_text(building_text(broker.port, public, name="Falls Over"))
    done = fleet(*base, "config", "push", B, str(pushed), "--watch-s", "120", "--no-watch")
    assert done.returncode == 0, (done.stdout, done.stderr)
    applied = results(done.stdout)[0]["detail"]["digest"]

    until_sync(lambda: (Watch.read(daemon.files.watch) or Watch(0, "", "", None, 0, 0)).starts == 1, 30, "the planned restart")
    for crash in (1, 2):  # killed, and started again as systemd would
        until_sync(lambda: running(base) == applied, 60, "the applied config running")
        daemon.process.kill()
        daemon.process.wait(10)
        daemon.start()
    until_sync(lambda: running(base) == digest_of(original), 60, "the previous config running")
    assert daemon.config.read_bytes() == original and not daemon.files.watch.exists()
    rolled = daemon.events("config.rolled_back")
    assert len(rolled) == 1 and rolled[0].body["why"] == "crash_loop" and "fell over 2 times" in rolled[0].body["reasons"][0]
    assert not daemon.events("config.kept")


def test_a_config_under_watch_that_does_not_start_is_rolled_back_at_once_not_left_exiting_78(building_dir, write_config):
    good = write_config(building())
    files = ConfigFiles(good)
    files.previous.write_bytes(good.read_bytes())
    good.write_text(MINIMAL + "  building_secret_typo: true\n")  # valid when applied, say; not now (text: a file that does not read)
    Watch(version=4, nonce="n" * 32, digest=digest_of(good.read_bytes()), previous_digest=digest_of(files.previous.read_bytes()),
          watch_s=120, deadline_at=time.time() + 120, restart=True).write(files.watch)
    log = building_dir / "daemon.log"
    daemon = Daemon(good, log=log, stop_s=15, strict=True).start()
    try:
        def rolled_back() -> bool:
            if good.read_bytes() != files.previous.read_bytes():
                return False
            try:
                return any(e.kind == "config.rolled_back" for e in read_events(load(good).journal_path, EventQuery(limit=None)))
            except (FileNotFoundError, sqlite3.Error):  # the journal is not made yet
                return False

        until_sync(rolled_back, 60, "the previous file restored and the rollback journaled")
        assert daemon.poll() is None, log.read_text()  # running on the previous file, under the same PID
        rolled = [e for e in read_events(load(good).journal_path, EventQuery(limit=None)) if e.kind == "config.rolled_back"]
        assert rolled[0].body["why"] == "start_failed" and rolled[0].body["version"] == 4
        assert "building_secret_typo" in files.failed.read_text() and not files.watch.exists()
    finally:
        daemon.stop()
