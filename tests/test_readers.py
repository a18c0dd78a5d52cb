"""Reader workers: repeats collapsed, faults reported, and the driver resumes after an unplug."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.drivers.cards.observations import CardRead, Protocol, ReaderFault
from edge.doors.settings import Reader
from edge.doors.readers import ReaderInbox, ReaderWorker, RepeatFilter
from edge.hil.card_sim import CardReaderSim
from edge.hil.waiting import until_sync

from conftest import in_background

pytestmark = pytest.mark.timeout(60)
CARD = b"\x01\x00\x12\x93\xd8"


def _read(serial: bytes, at: float, reader: str = "r1") -> CardRead:
    return CardRead(reader, serial, Protocol.EM4100, 40, at)


def test_repeat_filter_collapses_a_card_lying_on_the_reader():
    repeats = RepeatFilter(gap_s=0.5)
    reads = [_read(CARD, t) for t in (0.0, 0.1, 0.2, 0.3, 1.0)]
    assert [repeats.is_new(r) for r in reads] == [True, False, False, False, True]
    assert repeats.is_new(_read(b"\x01\x00\x00\x00\x02", 1.1)), "another card is news"
    assert repeats.is_new(_read(CARD, 1.1, reader="r2")), "another reader is news"


def _socat(a: Path, b: Path) -> subprocess.Popen:
    process = subprocess.Popen([shutil.which("socat"), f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    until_sync(lambda: a.exists() and b.exists(), 5, "socat's pty pair", every_s=0.01)
    return process


async def _next(inbox: ReaderInbox, kind: type, timeout_s: float = 10.0):
    async def wait():
        while True:
            item = await inbox.get()
            if isinstance(item, kind):
                return item
    return await asyncio.wait_for(wait(), timeout_s)


def test_an_unplugged_reader_is_a_fault_and_reads_again_when_it_returns(tmp_path: Path):
    sim_end, gateway_end = tmp_path / "sim", tmp_path / "gw"

    async def scenario():
        inbox = ReaderInbox(asyncio.get_running_loop())
        worker = ReaderWorker(Reader(name="r1", protocol="em4100", port=str(gateway_end)), inbox)
        failures: list[BaseException] = []

        async def supervised():  # what the Supervisor does: journal, back off, run again
            while True:
                try:
                    await worker.run()
                except Exception as failure:
                    failures.append(failure)
                    await asyncio.sleep(0.2)

        socat = _socat(sim_end, gateway_end)
        try:
            async with in_background(supervised()):
                await asyncio.sleep(0.3)
                with CardReaderSim(str(sim_end), "em4100") as sim:
                    sim.present(CARD)
                    first = await _next(inbox, CardRead)
                socat.terminate()
                socat.wait()
                fault = await _next(inbox, ReaderFault)
                socat = _socat(sim_end, gateway_end)
                await asyncio.sleep(1.0)  # the restarted worker opens the new port
                with CardReaderSim(str(sim_end), "em4100") as sim:
                    sim.present(CARD)
                    again = await _next(inbox, CardRead)
        finally:
            socat.terminate()
            socat.wait()
        return first, fault, again, failures

    first, fault, again, failures = asyncio.run(scenario())
    assert first.serial == CARD and again.serial == CARD
    assert fault.reader == "r1" and fault.reason.value in ("disconnected", "port_missing")
    assert failures, "the worker raised so the supervisor restarts it"


def test_a_full_inbox_drops_the_newest_and_counts_it():
    async def scenario():
        inbox = ReaderInbox(asyncio.get_running_loop(), size=2)
        for n in range(5):
            inbox.post(_read(bytes([n]) * 5, float(n)))
        await asyncio.sleep(0.05)
        return inbox.overflowed, [(await inbox.get()).received_mono for _ in range(2)]

    assert asyncio.run(scenario()) == (3, [0.0, 1.0])
