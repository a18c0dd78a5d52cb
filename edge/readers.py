"""Card readers at run time: serial ports read in threads, observations handed to the loop.

Each serial reader runs `drivers.cards.port.ReaderPort` in a worker thread; every
observation crosses to the asyncio loop with `call_soon_threadsafe` into one bounded
`ReaderInbox` that the access path drains. Any other driver (OSDP, say) posts its
`CardRead`/`PinEntry`/`ReaderFault` to the same inbox with `post()`, from any thread.

An RDM6300 repeats its frame every ~100 ms while a card lies on it; `RepeatFilter`
collapses those repeats into one read, so a card left on the reader opens the door once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import structlog

from drivers.cards.em4100 import Em4100Parser
from drivers.cards.observations import CardRead, FrameDropped, PinEntry, ReaderFault
from drivers.cards.port import FrameParser, ReaderPort
from drivers.cards.wiegand import WiegandParser
from edge.config import Reader, ReaderProtocol

log = structlog.get_logger("edge.readers")

INBOX_SIZE = 256
REPEAT_GAP_S = 0.5  # a frame of the same card sooner than this after the last is a repeat
ReaderObservation = CardRead | PinEntry | ReaderFault
REPEATING = frozenset({ReaderProtocol.EM4100})

# Protocols read by a plain serial port loop. GA 467 is a registration-desk reader
# (request/reply, driven by `edge credentials issue`), OSDP has its own driver.
SERIAL_PARSERS: dict[ReaderProtocol, Callable[[], FrameParser]] = {
    ReaderProtocol.EM4100: Em4100Parser,
    ReaderProtocol.WIEGAND: WiegandParser,
}


class ReaderInbox:
    """Bounded queue of reader observations; when full the newest is dropped and counted
    (a flood of frames must not grow memory; the reader repeats a card anyway)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int = INBOX_SIZE) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[ReaderObservation] = asyncio.Queue(size)
        self.overflowed = 0

    def post(self, observation: ReaderObservation) -> None:
        """Hand an observation over from any thread."""
        self._loop.call_soon_threadsafe(self._put, observation)

    def _put(self, observation: ReaderObservation) -> None:
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
    supervisor journals it and restarts the worker with backoff) or is cancelled."""

    def __init__(self, reader: Reader, inbox: ReaderInbox) -> None:
        self.reader = reader
        self.inbox = inbox
        # Only readers that repeat a card lying on them need the filter; a Wiegand tap is one frame.
        self.repeats = RepeatFilter() if reader.protocol in REPEATING else None
        self.drops: Counter[str] = Counter()

    async def run(self) -> None:
        port = ReaderPort(
            self.reader.name, self.reader.port, self.reader.baud, SERIAL_PARSERS[self.reader.protocol](),
            on_observation=self._observe, on_fault=self.inbox.post,
        )
        try:
            await asyncio.shield(asyncio.to_thread(port.run))
        finally:
            port.stop()

    def _observe(self, observation: CardRead | PinEntry | FrameDropped) -> None:
        """Runs in the port's thread: counts drops, collapses repeats, posts the rest."""
        if isinstance(observation, FrameDropped):
            self.drops[observation.cause.value] += 1
        elif not isinstance(observation, CardRead) or self.repeats is None or self.repeats.is_new(observation):
            self.inbox.post(observation)


def reader_workers(readers: list[Reader], inbox: ReaderInbox) -> dict[str, Callable[[], object]]:
    """A supervised job per serial reader, by name `reader:NAME`; others are skipped here."""
    work = {}
    for reader in readers:
        if reader.protocol in SERIAL_PARSERS:
            work[f"reader:{reader.name}"] = ReaderWorker(reader, inbox).run
        else:
            log.info("reader not driven by a serial port loop", reader=reader.name, protocol=str(reader.protocol))
    return work
