"""Benchmark: from exec to READY=1, to the first door decision and to the uplink, after a restart.

Prints one JSON object. A power cut or a crash ends in `edge run` being started again; what the
building waits for is the first door it can open. Each of `--starts` starts (default 20) runs
`edge run` as systemd would (NOTIFY_SOCKET set) on a one-door building that also has an uplink
(a real mosquitto on a free port) and the status page, with a journal of `--events` events
(default 1,000,000) and a credential store of 10,000 cards, both built once per run:

* exec_to_ready_ms: from just before the exec until READY=1 arrives on the notify socket.
* exec_to_first_decision_ms: a card is held on the reader from before the exec (the reader's
  frame written again every `HELD_EVERY_S` on a paced 9600 baud line, as a held card is read
  over and over: bytes that wait on a port are flushed when it opens); until the release coil
  write of the granted door reaches the simulated IO module (Modbus TCP).
* exec_to_uplink_connected_ms: until the gateway's retained `online` birth reaches a subscriber
  on the broker.
Each is the median over the starts, with its `_max`; `cpu_to_ready_ms` and `cpu_to_first_decision_ms`
are the daemon's CPU time (all its threads, 10 ms ticks) by then, which the machine's other load
moves much less than the wall-clock figures; `decided_before_uplink` counts the starts
whose door was decided before the uplink connected. As on a gateway, whose package compiles the
byte-code when it is installed, every process runs with byte-code cached (in the run's temp dir,
whatever PYTHONDONTWRITEBYTECODE says), after one start that is not counted.

Baselines measured in the same run: python_exec_ms (`python -c pass`, exec to exit) and
import_gateway_ms (`python -c "import edge.gateway"`), medians of `--starts` runs, each with its
CPU time (`_cpu_ms`); frame_wire_ms
is one card frame's time on the line (part of every decision figure).

Run: python -m edge.hil.bench.start [--starts 20] [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

from edge.config import building as building_config
from edge.doors.credentials.card_import import import_cards
from edge.doors.credentials.store import CredentialStore
from edge.doors.wiring import credentials_path
from edge.drivers.cards.em4100 import encode_frame
from edge.drivers.modbus.profile import load_profile
from edge.events import Event, Priority
from edge.hil.bench import access
from edge.hil.bench.stats import percentile
from edge.hil.broker import Broker
from edge.hil.line import SerialLine
from edge.journal import Journal, JournalLimits

REPO = Path(__file__).resolve().parents[2]
BAUD = 9600
HELD_EVERY_S = 0.02  # a held card's frame again after this (the frame itself is ~14.6 ms at 9600 8N1)
START_WITHIN_S = 60.0
BODY = {"point": "phase_a_current", "value": 12.345, "unit": "A"}


def _building(io_port: int, reader_port: str, broker_port: int) -> str:
    return f"""
building: {{id: bench-start, timezone: Asia/Shanghai, secret: {{file: secret.key}}}}
state_dir: state
logging: {{level: warning}}
journal: {{cap_mb: 100000, telemetry_retention_days: null}}
buses: [{{name: doors-bus, type: tcp, host: 127.0.0.1, port: {io_port}}}]
devices: [{{name: doors-io, bus: doors-bus, address: 1, profile: generic-dio8}}]
readers: [{{name: front-reader, protocol: em4100, port: {reader_port}, baud: {BAUD}}}]
doors:
  - {{name: front, readers: [front-reader], groups: [entrances], lock: {{device: doors-io, release: release_1, secure: secure_1}}}}
uplink: {{enabled: true, host: 127.0.0.1, port: {broker_port}}}
http: {{enabled: true, port: 0}}
"""


async def _fill_journal(path: Path, count: int, producers: int = 256) -> None:
    """`count` telemetry events through the journal's own appends (its schema, seqs and seq mark stay its own)."""
    journal = await Journal.open(path, JournalLimits(telemetry_retention_s=None, cap_bytes=10**12))
    per_producer = count // producers

    async def produce() -> None:
        for n in range(per_producer):
            await journal.append(Event(kind="telemetry.reading", priority=Priority.TELEMETRY, source="f3-monitor", body=dict(BODY, n=n)))

    await asyncio.gather(*(produce() for _ in range(producers)))
    await journal.close()


def _compiled(cache: Path) -> dict[str, str]:
    """The environment of a process that reads (and writes) its byte-code in `cache`."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(cache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _exec_ms(code: str, runs: int, env: dict[str, str]) -> tuple[float, float]:
    """Medians of exec to exit of `python -c code` and of its CPU time (after one run that is not counted)."""
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        times.append((time.monotonic() - started) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    return percentile(times, 50), percentile(cpu, 50)


def _cpu_ms(pid: int) -> float:
    """CPU time (user + system, all threads) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


class _LockIO(access.TimedIO):
    """The door's IO module, also noting the daemon's CPU time when the release arrives."""

    daemon: int | None = None
    cpu_at_release: float | None = None

    def write(self, function, address, values):
        answer = super().write(function, address, values)
        if self.released.is_set() and self.cpu_at_release is None and self.daemon is not None:
            self.cpu_at_release = _cpu_ms(self.daemon)
        return answer


class _Birth:
    """A subscriber to the gateway's status topic: when its `online` birth last arrived."""

    def __init__(self, port: int, topic: str) -> None:
        self.online = threading.Event()
        self.online_at = 0.0
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-start-watcher")
        self._client.on_message = self._message
        self._client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _message(self, client, userdata, message) -> None:
        try:
            state = json.loads(message.payload).get("state")
        except ValueError:
            return
        if state == "online" and not message.retain:
            self.online_at = time.monotonic()
            self.online.set()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _held_card(device_port: str, stop: threading.Event) -> None:
    """A card held on the reader: its frame, again and again, until `stop`."""
    fd = os.open(device_port, os.O_WRONLY | os.O_NOCTTY)
    frame = encode_frame(access.card_serial(0))
    try:
        while not stop.is_set():
            os.write(fd, frame)
            stop.wait(HELD_EVERY_S)
    finally:
        os.close(fd)


def _start_once(config_path: Path, notify_path: Path, io: _LockIO, line: SerialLine, birth: _Birth,
                env: dict[str, str]) -> dict[str, float]:
    """One start with a card held from before the exec: ms from the exec to READY, the grant and the uplink's birth."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path.unlink(missing_ok=True)
    notify.bind(str(notify_path))
    io.released.clear()
    io.daemon, io.cpu_at_release = None, None
    birth.online.clear()
    stop_card = threading.Event()
    card = threading.Thread(target=_held_card, args=(line.device_port, stop_card), daemon=True)
    card.start()
    time.sleep(0.1)  # the card is on the reader before the power comes back
    env = dict(env, NOTIFY_SOCKET=str(notify_path))
    execed = time.monotonic()
    gateway = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config_path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    io.daemon = gateway.pid
    ready_at = ready_cpu = None
    try:
        deadline = execed + START_WITHIN_S
        notify.settimeout(0.01)
        while ready_at is None or not io.released.is_set() or not birth.online.is_set():
            if time.monotonic() > deadline or gateway.poll() is not None:
                raise SystemExit(f"the gateway did not start within {START_WITHIN_S} s (ready {ready_at is not None}, "
                                 f"granted {io.released.is_set()}, uplink {birth.online.is_set()}, exit {gateway.poll()})")
            try:
                if b"READY=1" in notify.recv(4096):
                    ready_at, ready_cpu = time.monotonic(), _cpu_ms(gateway.pid)
            except TimeoutError:
                pass
    finally:
        stop_card.set()
        card.join(5)
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(15)
        notify.close()
    return {"ready": (ready_at - execed) * 1000, "decision": (io.released_at - execed) * 1000,
            "uplink": (birth.online_at - execed) * 1000, "ready_cpu": ready_cpu, "decision_cpu": io.cpu_at_release}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.bench.start", description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the journal the gateway opens")
    parser.add_argument("--cards", type=int, default=access.ENROLLED, help="cards in the credential store")
    parser.add_argument("--dir", type=Path, help="where to put the files (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-start-", dir=args.dir) as tmp, SerialLine(baud=BAUD, framing="8N1") as line, \
            Broker() as broker:
        base = Path(tmp)
        env = _compiled(base / "pycache")
        python_exec, python_exec_cpu = _exec_ms("pass", args.starts, env)
        import_gateway, import_gateway_cpu = _exec_ms("import edge.gateway", args.starts, env)
        (base / "secret.key").write_text("bench-" + "0" * 40)
        (base / "profiles").symlink_to(REPO / "drivers" / "modbus" / "profiles")
        io = _LockIO(load_profile(REPO / "drivers" / "modbus" / "profiles" / "generic-dio8.yaml"), 1)
        io_port, sim_loop = access.start_simulator(io)
        config_path = base / "building.yaml"
        config_path.write_text(_building(io_port, line.gateway_port, broker.port))
        config = building_config.load(config_path)
        built = time.monotonic()
        credentials_path(config).parent.mkdir(parents=True)
        access.write_import(base / "tenants.csv", args.cards)
        with CredentialStore.open(credentials_path(config), config.building.secret.read()) as store:
            import_cards(store, base / "tenants.csv")
        asyncio.run(_fill_journal(config.journal_path, args.events))
        build_s = time.monotonic() - built
        birth = _Birth(broker.port, f"{config.uplink.topic_prefix}/{config.building.id}/status")
        runs = []
        try:
            _start_once(config_path, base / "notify.sock", io, line, birth, env)  # writes the byte-code, as the package's install does
            for _ in range(args.starts):
                time.sleep(0.5)
                runs.append(_start_once(config_path, base / "notify.sock", io, line, birth, env))
        finally:
            birth.close()
            sim_loop.call_soon_threadsafe(sim_loop.stop)
    result: dict[str, object] = {}
    for key, part in (("exec_to_ready_ms", "ready"), ("exec_to_first_decision_ms", "decision"), ("exec_to_uplink_connected_ms", "uplink")):
        values = [run[part] for run in runs]
        result[key] = round(percentile(values, 50), 1)
        result[key.removesuffix("_ms") + "_max_ms"] = round(max(values), 1)
    result.update({
        "cpu_to_ready_ms": round(percentile([run["ready_cpu"] for run in runs], 50)),
        "cpu_to_first_decision_ms": round(percentile([run["decision_cpu"] for run in runs if run["decision_cpu"] is not None], 50)),
        "decided_before_uplink": sum(run["decision"] < run["uplink"] for run in runs),
        "python_exec_ms": round(python_exec, 1),
        "python_exec_cpu_ms": round(python_exec_cpu),
        "import_gateway_ms": round(import_gateway, 1),
        "import_gateway_cpu_ms": round(import_gateway_cpu),
        "frame_wire_ms": round(len(encode_frame(access.card_serial(0))) * 10 / BAUD * 1000, 1),
        "starts": args.starts,
        "journal_events": args.events,
        "cards": args.cards,
        "build_s": round(build_s, 1),
    })
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
