"""The demo building's simulated hardware: what `config/demo.yaml` points at.

One Modbus TCP simulator on 127.0.0.1:15020 holds every device, with value scripts that
make something happen within a minute: circuit f1-c1's phase A current climbs past its
warning and alarm limits (the gateway trips the breaker), and the roof tank's loop wire
breaks after 40 s (a sensor fault, which must never read as an empty tank). At the
entrance, an EM4100 reader on a socat pty pair sees three cards in turn: a tenant whose
rent is paid (the door opens, and is opened and closed), one behind on rent, and a stranger.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from drivers.modbus.profile import load_profile
from edge.access.credentials import CredentialStore, Enrolment
from hil.card_sim import CardReaderSim
from hil.modbus_sim import FieldSimulator, Noise, Ramp, SimulatedDevice, Step, wire_break

PROFILES = Path(__file__).resolve().parent.parent / "drivers" / "modbus" / "profiles"
PORT = 15020
READER_DIR = Path("/tmp/edge-demo")
TENANT_CARD = bytes.fromhex("01001293D8")
BEHIND_ON_RENT_CARD = bytes.fromhex("0100A1B2C3")
STRANGER_CARD = bytes.fromhex("0A0B0C0D0E")
TAP_EVERY_S = 6.0


def enrol_demo_tenants(store_path: Path, secret: bytes, today: date) -> None:
    """Two tenants of the demo house, written as a technician's `edge credentials issue` would."""
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with CredentialStore.open(store_path, secret) as store:
        lease = {"door_groups": ["entrances"], "valid_from": today - timedelta(days=90), "valid_until": today + timedelta(days=275)}
        store.issue(Enrolment(serial=TENANT_CARD, tenant="demo-T-0101", paid_through=today + timedelta(days=20), **lease))
        store.issue(Enrolment(serial=BEHIND_ON_RENT_CARD, tenant="demo-T-0102", paid_through=today - timedelta(days=6), **lease))


def devices() -> list[SimulatedDevice]:
    monitor = SimulatedDevice(load_profile(PROFILES / "generic-efm8.yaml"), 1)
    monitor.play("current_a", Ramp(start=14.0, per_s=0.5, stop=38.0))
    monitor.play("current_b", Noise(mean=12.0, sd=0.3, seed=2))
    monitor.play("current_c", Noise(mean=9.5, sd=0.3, seed=3))
    monitor.set_value("leakage_ma", 35)
    monitor.play("cable_temp_1", Noise(mean=31.0, sd=0.2, seed=4))
    breaker = SimulatedDevice(load_profile(PROFILES / "generic-breaker.yaml"), 2)
    breaker.set_value("closed", True)
    water = SimulatedDevice(load_profile(PROFILES / "generic-ai8.yaml"), 3)
    for channel in range(1, 9):
        water.set_value(f"ch{channel}_ma", 4.0)
    water.play("ch1_ma", Noise(mean=11.5, sd=0.05, seed=5))  # about 0.75 MPa
    water.play("ch3_ma", Step(before=14.0, after=wire_break().value, at_s=40.0))  # 3.1 m, then a cut wire
    doors = SimulatedDevice(load_profile(PROFILES / "generic-dio8.yaml"), 4)
    for n in range(1, 9):
        doors.set_value(f"input_{n}", False)
    return [monitor, breaker, water, doors]


class DemoBuilding:
    """Runs the Modbus simulator on its own event loop and a card tapper, in background threads."""

    def __init__(self, port: int = PORT) -> None:
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="demo-building", daemon=True)
        self.simulator = FieldSimulator(devices())
        self._stop = threading.Event()
        self._socat: subprocess.Popen[bytes] | None = None
        self._tapper = threading.Thread(target=self._tap_cards, name="demo-cards", daemon=True)

    def __enter__(self) -> "DemoBuilding":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.simulator.start_tcp("127.0.0.1", self.port), self._loop).result(timeout=10)
        READER_DIR.mkdir(parents=True, exist_ok=True)
        gateway_end, card_end = READER_DIR / "entrance-reader", READER_DIR / "entrance-card"
        self._socat = subprocess.Popen(
            [shutil.which("socat") or "socat", f"pty,raw,echo=0,link={gateway_end}", f"pty,raw,echo=0,link={card_end}"],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (gateway_end.exists() and card_end.exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._tapper.start()
        return self

    def _tap_cards(self) -> None:
        """Tenant, tenant behind on rent, stranger, in turn; the tenant also opens the door."""
        reader = CardReaderSim(str(READER_DIR / "entrance-card"), "em4100")
        doors = self.simulator.device(4)
        cards = [TENANT_CARD, BEHIND_ON_RENT_CARD, STRANGER_CARD]
        turn = 0
        while not self._stop.wait(TAP_EVERY_S):
            card = cards[turn % len(cards)]
            reader.present(card, repeats=3)
            if card == TENANT_CARD:
                time.sleep(1.0)
                doors.set_value("input_1", True)   # the tenant walks through
                time.sleep(2.0)
                doors.set_value("input_1", False)
            turn += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._tapper.join(timeout=10)
        if self._socat is not None:
            self._socat.terminate()
            self._socat.wait(timeout=5)
        asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
