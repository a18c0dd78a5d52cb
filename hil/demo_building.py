"""The demo building's simulated hardware: what `config/demo.yaml` points at.

One Modbus TCP simulator on a free port of 127.0.0.1 holds every device, with value scripts that keep
the building alive for as long as the demo runs. Circuit f1-c1's currents drift through a
"day" compressed into ten minutes; at 40 s phase A surges past its alarm limit (the gateway
trips the breaker, and the circuit then carries nothing until `edge breaker close`), and
every few minutes a smaller surge raises a warning that clears again. The roof tank's loop
wire breaks now and then for a minute (a sensor fault, which must never read as an empty
tank). At the entrance, an EM4100 reader on a socat pty pair sees a card every few seconds:
a tenant whose rent is paid (the door opens, and is opened and closed; now and then it is
held open too long), one behind on rent, and a stranger.
"""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

from edge.drivers.modbus.profile import load_profile
from edge.config.building import BUILT_IN_PROFILES
from edge.doors.credentials.store import CredentialStore, Enrolment
from edge.hil.card_sim import CardReaderSim
from edge.hil.modbus_sim import FieldSimulator, SimulatedDevice, wire_break

PROFILES = BUILT_IN_PROFILES  # the gateway's shipped profiles, in the repository or installed
TENANT_CARD = bytes.fromhex("01001293D8")
BEHIND_ON_RENT_CARD = bytes.fromhex("0100A1B2C3")
STRANGER_CARD = bytes.fromhex("0A0B0C0D0E")
TAP_EVERY_S = 6.0
DAY_S = 600.0  # the demo's day: a load curve a newcomer can watch move
HELD_OPEN_EVERY = 7  # tenant taps: now and then the door is kept open past held_open_s


@dataclass
class DailyLoad:
    """A current that follows the building's day (low at night, high in the evening), with noise."""

    mean: float
    swing: float
    phase: float = 0.0
    sd: float = 0.2
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def value_at(self, elapsed_s: float) -> float:
        day = math.sin(2 * math.pi * (elapsed_s / DAY_S + self.phase))
        return max(0.0, self.mean + self.swing * day + self._random.gauss(0, self.sd))


@dataclass
class Surges:
    """`base`, except during a surge: the first at `first_at_s` to `first_peak`, then every
    `every_s` for `last_s` to `peak`. Nothing flows while `energised()` says the breaker is open."""

    base: DailyLoad
    energised: Callable[[], bool] = lambda: True
    first_at_s: float = math.inf  # no surges unless given
    first_peak: float = 0.0
    peak: float = 0.0
    every_s: float = math.inf
    last_s: float = 0.0

    def value_at(self, elapsed_s: float) -> float:
        if not self.energised():
            return 0.0
        if self.first_at_s <= elapsed_s < self.first_at_s + self.last_s:
            return self.first_peak
        since = elapsed_s - self.first_at_s
        if since > 0 and since % self.every_s < self.last_s:
            return self.peak
        return self.base.value_at(elapsed_s)


@dataclass(frozen=True)
class NowAndThen:
    """A loop current that is fine, then broken for `broken_s` every `every_s` (first at `first_at_s`)."""

    fine: float
    broken: float
    first_at_s: float
    every_s: float
    broken_s: float

    def value_at(self, elapsed_s: float) -> float:
        since = elapsed_s - self.first_at_s
        return self.broken if since >= 0 and since % self.every_s < self.broken_s else self.fine


def enrol_demo_tenants(store_path: Path, secret: bytes, today: date) -> None:
    """Two tenants of the demo house, written as a technician's `edge credentials issue` would."""
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with CredentialStore.open(store_path, secret) as store:
        lease = {"door_groups": ["entrances"], "valid_from": today - timedelta(days=90), "valid_until": today + timedelta(days=275)}
        store.issue(Enrolment(serial=TENANT_CARD, tenant="demo-T-0101", paid_through=today + timedelta(days=20), **lease))
        store.issue(Enrolment(serial=BEHIND_ON_RENT_CARD, tenant="demo-T-0102", paid_through=today - timedelta(days=6), **lease))


def devices() -> list[SimulatedDevice]:
    monitor = SimulatedDevice(load_profile(PROFILES / "generic-efm8.yaml"), 1)
    breaker = SimulatedDevice(load_profile(PROFILES / "generic-breaker.yaml"), 2)
    breaker.set_value("closed", True)

    def energised() -> bool:
        return breaker.value_of("closed") is True

    # 40 s in: an alarm and a trip; then every 4 minutes a warning that clears by itself.
    monitor.play("current_a", Surges(DailyLoad(16.0, 5.0, seed=1), energised, first_at_s=40.0, first_peak=36.0, peak=30.0,
                                     every_s=240.0, last_s=25.0))
    monitor.play("current_b", Surges(DailyLoad(12.0, 4.0, phase=0.1, seed=2), energised))
    monitor.play("current_c", Surges(DailyLoad(9.5, 3.0, phase=0.2, seed=3), energised))
    monitor.set_value("leakage_ma", 35)
    monitor.play("cable_temp_1", DailyLoad(31.0, 3.0, phase=0.15, seed=4))
    water = SimulatedDevice(load_profile(PROFILES / "generic-ai8.yaml"), 3)
    for channel in range(1, 9):
        water.set_value(f"ch{channel}_ma", 4.0)
    water.play("ch1_ma", DailyLoad(11.5, 0.4, phase=0.5, sd=0.05, seed=5))  # about 0.75 MPa, lower when taps run
    water.play("ch3_ma", NowAndThen(fine=14.0, broken=float(wire_break().value), first_at_s=40.0, every_s=300.0, broken_s=60.0))
    doors = SimulatedDevice(load_profile(PROFILES / "generic-dio8.yaml"), 4)
    for n in range(1, 9):
        doors.set_value(f"input_{n}", False)
    return [monitor, breaker, water, doors]


class DemoBuilding:
    """Runs the Modbus simulator on its own event loop and a card tapper, in background threads."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        """`folder` holds the reader's pty pair; `port` 0 lets the simulator take a free one (`self.port` after start)."""
        self.folder = Path(folder)
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="demo-building", daemon=True)
        self.simulator = FieldSimulator(devices())
        self._stop = threading.Event()
        self._socat: subprocess.Popen[bytes] | None = None
        self._tapper = threading.Thread(target=self._tap_cards, name="demo-cards", daemon=True)

    def __enter__(self) -> "DemoBuilding":
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.simulator.start_tcp("127.0.0.1", self.port), self._loop).result(timeout=10)
        self.folder.mkdir(parents=True, exist_ok=True)
        gateway_end, card_end = self.reader_port, self.folder / "entrance-card"
        self._socat = subprocess.Popen(
            [shutil.which("socat") or "socat", f"pty,raw,echo=0,link={gateway_end}", f"pty,raw,echo=0,link={card_end}"],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (gateway_end.exists() and card_end.exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._tapper.start()
        return self

    @property
    def reader_port(self) -> Path:
        """The gateway's end of the entrance reader's pty pair."""
        return self.folder / "entrance-reader"

    def _tap_cards(self) -> None:
        """Tenant, tenant behind on rent, stranger, in turn; the tenant also opens the door."""
        reader = CardReaderSim(str(self.folder / "entrance-card"), "em4100")
        doors = self.simulator.device(4)
        cards = [TENANT_CARD, BEHIND_ON_RENT_CARD, STRANGER_CARD]
        turn = 0
        while not self._stop.wait(TAP_EVERY_S):
            card = cards[turn % len(cards)]
            reader.present(card, repeats=3)
            if card == TENANT_CARD:
                time.sleep(1.0)
                doors.set_value("input_1", True)   # the tenant walks through
                held = (turn // len(cards)) % HELD_OPEN_EVERY == HELD_OPEN_EVERY - 1  # a pram, a delivery
                self._stop.wait(35.0 if held else 2.0)
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
