"""Card readers at run time: serial ports read in threads, observations handed to the loop.

Each serial reader runs `edge.drivers.cards.port.ReaderPort` on a thread of its own (`pools.in_thread`); every
observation crosses to the asyncio loop with `call_soon_threadsafe` into one bounded
`ReaderInbox` that the access path drains. Any other driver posts its observations to
the same inbox with `post()` from any thread, or `put()` from the loop's own.

OSDP readers share their RS-485 line (multidrop): the readers of one port are one
`OsdpBus`, run by one `OsdpBusWorker` under the supervisor, whose observations go into
the same inbox and which shows each decision on the reader's LED and buzzer.
A flapping reader must not flood the journal: `FaultLimiter` lets a few fault/restored
transitions per reader and reason through per window, counts the rest, and reports the
reader's latest state once the window allows.

An RDM6300 repeats its frame every ~100 ms while a card lies on it; `RepeatFilter`
collapses those repeats into one read, so a card left on the reader opens the door once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from edge.drivers.cards.em4100 import Em4100Parser
from edge.drivers.cards.observations import CardRead, DropCause, FaultReason, FrameDropped, PinEntry, ReaderFault, ReaderRestored
from edge.drivers.cards.port import FrameParser, ReaderPort
from edge.drivers.cards.wiegand import WiegandParser
from edge.runtime import pools
from edge.doors.settings import Reader, ReaderProtocol

if TYPE_CHECKING:
    from edge.drivers.osdp.bus import OsdpBus

log = structlog.get_logger("edge.doors.readers")

INBOX_SIZE = 256
REPEAT_GAP_S = 0.5  # a frame of the same card sooner than this after the last is a repeat
FAULT_BURST = 4  # fault/restored transitions of one reader and reason journaled per window...
FAULT_WINDOW_S = 60.0  # ...beyond that they are counted and summed up in the next one
ReaderHealth = ReaderFault | ReaderRestored
ReaderObservation = CardRead | PinEntry | ReaderHealth
Work = Callable[[], Awaitable[None]]
REPEATING = frozenset({ReaderProtocol.EM4100})
PORT_STOP_S = 1.0  # a port's thread sees stop() within one read timeout (0.1 s)
DROP_SAMPLE_S = 1.0  # how often an OSDP bus's drop counters are read into the tally
_DROP_CAUSES = {cause.value: cause for cause in DropCause}

# Protocols read by a plain serial port loop. GA 467 is a registration-desk reader
# (request/reply, driven by `edge credentials issue`), OSDP has its own driver.
SERIAL_PARSERS: dict[ReaderProtocol, Callable[[], FrameParser]] = {
    ReaderProtocol.EM4100: Em4100Parser,
    ReaderProtocol.WIEGAND: WiegandParser,
}


class ReaderInbox:
    """Bounded queue of reader observations; when full the newest is dropped and counted
    (a flood of frames must not grow memory; the reader repeats a card anyway).

    Dropped frames (garbage on a card line) do not take a place in the queue, where a flood
    of them would push out real cards: they are tallied per reader and cause beside it
    (`count_drop`, from any thread) and collected by the access path (`take_drops`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int = INBOX_SIZE) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[ReaderObservation] = asyncio.Queue(size)
        self.overflowed = 0
        self._drops: Counter[tuple[str, str]] = Counter()
        self._drops_lock = threading.Lock()  # port threads add, the loop takes

    def count_drop(self, reader: str, cause: DropCause, count: int = 1) -> None:
        """Tally a dropped frame (or run of garbage) at `reader`, from any thread."""
        with self._drops_lock:
            self._drops[(reader, cause.value)] += count

    def take_drops(self) -> Counter[tuple[str, str]]:
        """The drops tallied since the last call, by (reader, cause)."""
        with self._drops_lock:
            drops, self._drops = self._drops, Counter()
        return drops

    def post(self, observation: ReaderObservation) -> None:
        """Hand an observation over from any thread."""
        self._loop.call_soon_threadsafe(self.put, observation)

    def put(self, observation: ReaderObservation) -> None:
        """Hand an observation over from the loop's own thread."""
        try:
            self._queue.put_nowait(observation)
        except asyncio.QueueFull:
            self.overflowed += 1

    async def get(self) -> ReaderObservation:
        return await self._queue.get()


class RepeatFilter:
    """Drops a card read that repeats the previous read of the same card at the same reader
    within `gap_s`; each repeat extends the window, so a card lying on the reader is one read."""

    def __init__(self, gap_s: float = REPEAT_GAP_S) -> None:
        self.gap_s = gap_s
        self._last: dict[str, tuple[bytes, float]] = {}

    def is_new(self, read: CardRead) -> bool:
        last = self._last.get(read.reader)
        self._last[read.reader] = (read.serial, read.received_mono)
        return last is None or last[0] != read.serial or read.received_mono - last[1] > self.gap_s


class ReaderWorker:
    """One serial reader: `run()` reads until the port fails (then raises, so the
    supervisor journals it and restarts the worker with backoff) or is cancelled.
    When the port opens again after a fault, each fault reason seen meanwhile is
    reported restored, so a reader plugged back in is known to be back before a tap."""

    def __init__(self, reader: Reader, inbox: ReaderInbox) -> None:
        self.reader = reader
        self.inbox = inbox
        # Only readers that repeat a card lying on them need the filter; a Wiegand tap is one frame.
        self.repeats = RepeatFilter() if reader.protocol in REPEATING else None
        self.drops: Counter[str] = Counter()
        self._faults: dict[FaultReason, None] = {}  # reasons faulted since the port was last open, in order (port thread only)

    async def run(self) -> None:
        port = ReaderPort(
            self.reader.name, self.reader.port, self.reader.baud, SERIAL_PARSERS[self.reader.protocol](),
            on_observation=self._observe, on_fault=self._fault, on_open=self._opened,
        )
        reading = pools.in_thread(f"reader-{self.reader.name}", port.run)  # never a pooled thread: it blocks for life
        try:
            await asyncio.shield(reading)
        except asyncio.CancelledError:  # stop the port and see its thread end, not abandon it
            port.stop()
            await _port_thread_ended(self.reader.name, reading)
            raise
        finally:
            port.stop()

    def _fault(self, fault: ReaderFault) -> None:
        """Runs in the port's thread: remember the reason until the port opens again."""
        self._faults.setdefault(fault.reason)
        self.inbox.post(fault)

    def _opened(self) -> None:
        """Runs in the port's thread: the port is open again; every fault since has cleared."""
        for reason in self._faults:
            self.inbox.post(ReaderRestored(self.reader.name, reason, f"port {self.reader.port} open again"))
        self._faults.clear()

    def _observe(self, observation: CardRead | PinEntry | FrameDropped) -> None:
        """Runs in the port's thread: counts drops, collapses repeats, posts the rest."""
        if isinstance(observation, FrameDropped):
            self.drops[observation.cause.value] += 1
            self.inbox.count_drop(self.reader.name, observation.cause)
        elif not isinstance(observation, CardRead) or self.repeats is None or self.repeats.is_new(observation):
            self.inbox.post(observation)



async def _port_thread_ended(reader: str, reading: asyncio.Future[None]) -> None:
    """After `stop()`, wait (bounded) for the port's thread to end and take its outcome, so a
    failure of a port being stopped is logged once instead of 'exception never retrieved'."""
    if not reading.done():
        await asyncio.wait({reading}, timeout=PORT_STOP_S)
    if not reading.done():
        log.error("reader port thread did not stop in time", reader=reader, within_s=PORT_STOP_S)
        reading.add_done_callback(_outcome_taken)
        return
    _outcome_taken(reading)


def _outcome_taken(reading: asyncio.Future[None]) -> None:
    if not reading.cancelled() and reading.exception() is not None:
        log.info("reader port ended with an error while stopping", error=str(reading.exception()))

@dataclass
class _Flaps:
    """One reader and reason in the limiter: when transitions were let through, what is held back."""

    passed: deque[float] = field(default_factory=deque)
    held: ReaderHealth | None = None
    suppressed: int = 0


class FaultLimiter:
    """Rate limit for reader fault/restored events: at most `burst` per reader and reason per
    `window_s`. Held-back transitions are counted; the latest is let through with that count
    as soon as the window allows, so the journal always ends in the reader's true state."""

    def __init__(self, burst: int = FAULT_BURST, window_s: float = FAULT_WINDOW_S) -> None:
        self.burst, self.window_s = burst, window_s
        self._flaps: dict[tuple[str, FaultReason], _Flaps] = {}

    def offer(self, health: ReaderHealth, now: float) -> list[tuple[ReaderHealth, int]]:
        """What to journal now, each with the number of transitions it stands for beyond itself."""
        flaps = self._flaps.setdefault((health.reader, health.reason), _Flaps())
        if flaps.held is not None:
            flaps.suppressed += 1
        flaps.held = health
        return self._release(flaps, now)

    def flush(self, now: float) -> list[tuple[ReaderHealth, int]]:
        """Held-back states whose window has reopened."""
        return [item for flaps in self._flaps.values() if flaps.held is not None for item in self._release(flaps, now)]

    def _release(self, flaps: _Flaps, now: float) -> list[tuple[ReaderHealth, int]]:
        while flaps.passed and now - flaps.passed[0] >= self.window_s:
            flaps.passed.popleft()
        if len(flaps.passed) >= self.burst or flaps.held is None:
            return []
        flaps.passed.append(now)
        released = [(flaps.held, flaps.suppressed)]
        flaps.held, flaps.suppressed = None, 0
        return released


class OsdpBusWorker:
    """The OSDP readers on one serial port as one bus: `run()` polls them until the bus fails
    (then raises, so the supervisor journals it and restarts with backoff) or is cancelled."""

    def __init__(self, port: str, baud: int, readers: list[Reader], inbox: ReaderInbox) -> None:
        from edge.drivers.osdp.bus import OsdpReader  # libosdp is loaded only where an OSDP reader is configured

        self.port, self.baud = port, baud
        self.readers = [OsdpReader(r.name, r.osdp_address, r.osdp_key.file) for r in readers]  # type: ignore[arg-type, union-attr]
        self.inbox = inbox
        self.bus: OsdpBus | None = None
        self.drops: Counter[str] = Counter()
        self._tallied: dict[str, int] = {}
        self.indications_refused = 0

    async def run(self) -> None:
        from edge.drivers.osdp.bus import OsdpBus

        bus = OsdpBus(self.port, self.baud, self.readers)  # reads the key files: a bad one fails here
        async with bus:
            self.bus, self._tallied = bus, {}
            try:
                while True:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(DROP_SAMPLE_S):
                            observation = await bus.observations.get()
                            if isinstance(observation, FrameDropped):
                                self.drops[observation.cause.value] += 1
                            else:
                                self.inbox.put(observation)
                    self._tally_drops(bus)
                    bus.check()
            finally:
                self.bus = None
                self._tally_drops(bus)

    def _tally_drops(self, bus: OsdpBus) -> None:
        """Hand the line's new drops (garbage, bad frames, untranslatable events) to the inbox's tally."""
        counts = bus.drop_counts()
        for cause, count in counts.items():
            new = count - self._tallied.get(cause, 0)
            if new > 0 and cause in _DROP_CAUSES:
                self.inbox.count_drop(f"osdp:{self.port}", _DROP_CAUSES[cause], new)
        self._tallied = counts

    def indicate(self, reader: str, granted: bool) -> None:
        """Show a decision on `reader`'s LED and buzzer. Blocks on libosdp's lock: call it off the loop."""
        bus = self.bus
        if bus is None or not bus.is_online(reader):
            return  # nothing to show on a reader that cannot hear it; its fault is journaled already
        if not (bus.grant(reader) if granted else bus.deny(reader)):
            self.indications_refused += 1


@dataclass
class ReaderWork:
    """The supervised jobs of the building's readers, and how to show a decision on each reader that can."""

    jobs: dict[str, Work]
    indicators: dict[str, Callable[[str, bool], None]]
    readers: dict[str, tuple[Reader, ...]] = field(default_factory=dict)  # job -> the readers it drives (a reload compares them)


def reader_jobs(readers: list[Reader]) -> dict[str, tuple[Reader, ...]]:
    """Which job drives which readers: `reader:NAME` per serial reader, `osdp:PORT` per OSDP line
    (a reload compares these to start, stop or restart a job alone)."""
    jobs: dict[str, tuple[Reader, ...]] = {}
    for reader in readers:
        if reader.protocol in SERIAL_PARSERS:
            jobs[f"reader:{reader.name}"] = (reader,)
        elif reader.protocol is ReaderProtocol.OSDP:
            jobs[f"osdp:{reader.port}"] = jobs.get(f"osdp:{reader.port}", ()) + (reader,)
    return jobs


def reader_workers(readers: list[Reader], inbox: ReaderInbox, only: set[str] | None = None) -> ReaderWork:
    """A job per serial reader (`reader:NAME`) and per OSDP port (`osdp:PORT`), or only the jobs
    named in `only`; readers of other protocols are skipped here."""
    jobs: dict[str, Work] = {}
    indicators: dict[str, Callable[[str, bool], None]] = {}
    driven = {job: on_job for job, on_job in reader_jobs(readers).items() if only is None or job in only}
    for job, on_job in driven.items():
        if job.startswith("reader:"):
            jobs[job] = ReaderWorker(on_job[0], inbox).run
        else:
            worker = OsdpBusWorker(on_job[0].port, on_job[0].baud, list(on_job), inbox)
            jobs[job] = worker.run
            indicators.update((reader.name, worker.indicate) for reader in on_job)
    for reader in readers if only is None else ():
        if reader.protocol not in SERIAL_PARSERS and reader.protocol is not ReaderProtocol.OSDP:
            log.info("reader not driven by a serial port loop", reader=reader.name, protocol=str(reader.protocol))
    return ReaderWork(jobs, indicators, driven)
