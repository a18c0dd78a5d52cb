"""One RS-485 bus of OSDP readers, the gateway as Control Panel (CP) through libosdp.

Threads and the loop (traps found in libosdp 3.2.9):
- libosdp's latency is set by how often its refresh runs (its wrapper sleeps 20 ms between
  refreshes); the bus runs refresh every REFRESH_S (2 ms) in its own thread. libosdp takes one
  step per refresh (a reply read; the next command taken from the queue; that command written),
  so after a frame arrives, and when the loop queues a command, the thread refreshes again at
  once for those steps instead of a 2 ms sleep between each (4 ms of every tap's answer).
- An idle reader is polled OSDP_PD_POLL_TIMEOUT_MS (50 ms, fixed when libosdp is compiled) after
  its last reply: a card waits up to that long for its poll, most of a tap's answer time. See
  docs/performance.md.
- The CP calls the event callback from inside refresh, holding the CP lock: calling the CP
  from there deadlocks. The callback only translates the event and hands the observations to
  the asyncio loop with call_soon_threadsafe into a bounded queue (full: counted drop).
- The wrapper queues every event internally whether or not a handler is set; the callback
  drains that queue so memory stays flat.
- A silent reader stays "online" in libosdp while it probes, and a reader that went offline is
  retried only after 300 s. The bus watches replies itself: no reply for SILENCE_S is an OFFLINE
  fault; while a reader is down the bus disables and re-enables it every RETRY_S.
- Every CP call takes the refresh thread's lock. The link checks (WATCH_S) therefore run in the
  refresh thread itself, right after a refresh with the lock still held, and only their changes
  (fault, restored) cross to the loop; the loop never waits behind libosdp for them.
Secure Channel is on by default (libosdp's EnforceSecure flag), with each reader's key from its
secret file. A reader that answers but never gets a session is a SECURE_CHANNEL fault (wrong key).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import osdp

from edge.drivers.cards.observations import FaultReason, ReaderFault, ReaderRestored
from edge.drivers.osdp.channel import SerialChannel
from edge.drivers.osdp.events import EventTranslator, Observation
from edge.drivers.osdp.keys import load_key

REFRESH_S = 0.002
FOLLOW_UP = 2  # refreshes at once after a frame arrives: take the next command, write it
WATCH_S = 0.05
SILENCE_S = 1.0
RETRY_S = 2.0
RETURN_HANDSHAKE_S = 6.0  # a down reader answering again: its new session may take a while on a busy CPU
QUEUE_SIZE = 256
OUTPUT_TIMER_UNIT_MS = 100
MAX_OUTPUT_MS = 255 * OUTPUT_TIMER_UNIT_MS  # libosdp 3.2.9's binding keeps one timer byte


@dataclass(frozen=True, slots=True)
class OsdpReader:
    """One reader on the bus: its name in the building, OSDP address, and key file."""

    name: str
    address: int
    key_file: Path | None = None  # None only when secure is off for the whole bus


@dataclass(frozen=True, slots=True)
class Indication:
    """What a reader shows for a decision: LED colour and buzzer beeps."""

    led_color: int
    led_ms: int
    beeps: int


GRANT = Indication(osdp.CommandLEDColor.Green, 2000, 1)
DENY = Indication(osdp.CommandLEDColor.Red, 2000, 3)


@dataclass
class _Health:
    """What the link checks know of one reader's link (written only by the refresh thread)."""

    fault: FaultReason | None = None  # OFFLINE or SECURE_CHANNEL while down
    up: bool = False
    up_once: bool = False
    retry_at: float = 0.0
    reenable: bool = False
    disabled_at: float = 0.0  # when the last disable was asked for
    attempt_since: float = field(default_factory=time.monotonic)  # start or last re-enable
    answering_since: float | None = None  # first reply of this attempt: its handshake's clock


def refresh_often(
    event: threading.Event, lock: threading.Lock, ctx: object,
    watch: Callable[[object, float], None] | None = None,
    channel: SerialChannel | None = None, wake: threading.Event | None = None,
) -> None:
    """libosdp's refresh loop at REFRESH_S instead of its 20 ms: its latency is set by this.
    `watch(ctx, now)`, if given, runs every WATCH_S right after a refresh, with the lock held.
    A refresh that read a frame from `channel` is followed at once by FOLLOW_UP more, and `wake`
    (set when a command is queued) ends the wait, so each of libosdp's one-step-per-refresh
    moves does not wait REFRESH_S for the next."""
    next_watch = 0.0
    follow = 0
    while not event.is_set():
        with lock:
            seen = channel.frames_received if channel is not None else 0
            ctx.refresh()  # type: ignore[attr-defined]
            if channel is not None and channel.frames_received != seen:
                follow = FOLLOW_UP
            if watch is not None and (now := time.monotonic()) >= next_watch:
                next_watch = now + WATCH_S
                watch(ctx, now)
        if follow:
            follow -= 1
        elif wake is None:
            time.sleep(REFRESH_S)
        elif wake.wait(REFRESH_S):
            wake.clear()
            follow = FOLLOW_UP - 1  # the next refresh takes the command from the queue, the one after writes it


class _ControlPanel(osdp.ControlPanel):
    """libosdp's CP with a refresh loop fast enough for a door (2 ms instead of 20 ms) that
    also runs the bus's link checks, and is woken when a command is queued."""

    def __init__(
        self, *args: Any, watch: Callable[[object, float], None], channel: SerialChannel, **kwargs: Any,
    ) -> None:
        self._watch = watch
        self._channel = channel
        self.wake = threading.Event()
        super().__init__(*args, **kwargs)

    def refresh(self, event: threading.Event, lock: threading.Lock, ctx: object) -> None:  # type: ignore[override]
        refresh_often(event, lock, ctx, self._watch, self._channel, self.wake)

    def submit_command(self, address: int, cmd: dict[str, object]) -> bool:  # type: ignore[override]
        queued = bool(super().submit_command(address, cmd))
        self.wake.set()
        return queued


class OsdpBus:
    """Polls the readers of one serial port and reports their observations on an asyncio queue."""

    def __init__(
        self, path: str, baud: int, readers: list[OsdpReader], secure: bool = True,
        log_level: int = osdp.LogLevel.Error,
    ) -> None:
        if not readers:
            raise ValueError("an OSDP bus needs at least one reader")
        addresses = [reader.address for reader in readers]
        if len(set(addresses)) != len(addresses) or not all(0 <= a <= 126 for a in addresses):
            raise ValueError(f"OSDP addresses must be distinct and within 0..126, got {addresses}")
        self.secure = secure
        self.readers = {reader.name: reader for reader in readers}
        self._by_address = {reader.address: reader for reader in readers}
        self._infos = [self._pd_info(reader) for reader in readers]  # keys read before the port opens
        self._channel = SerialChannel(path, baud)
        self._translators = {reader.address: EventTranslator(reader.name) for reader in readers}
        self._health = {reader.address: _Health() for reader in readers}
        self._cp = _ControlPanel(
            [self._with_channel(info) for info in self._infos], log_level=log_level,
            event_handler=self._on_event, watch=self._watch, channel=self._channel,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.observations: asyncio.Queue[Observation] = asyncio.Queue(QUEUE_SIZE)
        self.dropped_observations = 0
        self.watch_failure: Exception | None = None  # the link checks failed (a bug): see check()

    async def start(self) -> None:
        """Start the refresh thread (which also checks the links) for the running loop."""
        self._loop = asyncio.get_running_loop()
        self._cp.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self._cp.stop)
        self._channel.close()

    def check(self) -> None:
        """Raise what stopped the link checks, so whoever runs the bus restarts it."""
        if self.watch_failure is not None:
            raise RuntimeError(f"OSDP link checks stopped: {self.watch_failure!r}") from self.watch_failure

    async def __aenter__(self) -> OsdpBus:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def grant(self, reader: str) -> bool:
        """Show a grant at `reader`: green LED and one beep."""
        return self.indicate(reader, GRANT)

    def deny(self, reader: str) -> bool:
        """Show a deny at `reader`: red LED and three beeps."""
        return self.indicate(reader, DENY)

    def indicate(self, reader: str, indication: Indication) -> bool:
        """Queue the LED and buzzer commands; False if the reader is unknown or not accepted."""
        address = self._address(reader)
        led = {
            "command": osdp.Command.LED, "reader": 0, "led_number": 0, "temporary": True,
            "control_code": 2, "on_count": 5, "off_count": 0,
            "on_color": indication.led_color, "off_color": osdp.CommandLEDColor.Black,
            "timer_count": _timer_count(indication.led_ms),
        }
        buzzer = {
            "command": osdp.Command.Buzzer, "reader": 0, "control_code": 2,
            "on_count": 1, "off_count": 1, "rep_count": indication.beeps,
        }
        return bool(self._cp.submit_command(address, led)) & bool(self._cp.submit_command(address, buzzer))

    def set_output(self, reader: str, output: int, on: bool, ms: int = 0) -> bool:
        """Drive the reader's own output `output` (its relay): on for `ms` (0: until told), or off."""
        if not 0 <= ms <= MAX_OUTPUT_MS:
            raise ValueError(f"OSDP output time must be within 0..{MAX_OUTPUT_MS} ms, got {ms}")
        # OSDP v2.2 osdp_OUT control codes: 1 permanent off, 2 permanent on, 5 temporary on
        if not on:
            control_code, timer = 1, 0
        elif ms:
            control_code, timer = 5, _timer_count(ms)
        else:
            control_code, timer = 2, 0
        command = {
            "command": osdp.Command.Output, "output_no": output,
            "control_code": control_code, "timer_count": timer,
        }
        return bool(self._cp.submit_command(self._address(reader), command))

    def is_online(self, reader: str) -> bool:
        """True while `reader` answers with its session up (Secure Channel when secure)."""
        return self._health[self._address(reader)].up

    def link_faults(self) -> dict[str, FaultReason | None]:
        """Each reader's current link fault (None when online with its session)."""
        return {self._by_address[a].name: h.fault for a, h in self._health.items()}

    def drop_counts(self) -> dict[str, int]:
        """Bytes and events dropped on this bus, by cause (framing and translation)."""
        counts = dict(self._channel.assembler.drops.as_dict())
        for translator in self._translators.values():
            for cause, count in translator.drops.as_dict().items():
                counts[cause] = counts.get(cause, 0) + count
        if self.dropped_observations:
            counts["queue_full"] = self.dropped_observations
        return counts

    def _on_event(self, pd: int, event: dict[str, object]) -> int:
        """Runs inside libosdp's refresh with the CP lock held: never call the CP from here."""
        received_mono = time.monotonic()
        address = self._cp.pd_addr[pd]
        for _ in self._drain(address):
            pass
        items = self._translators[address].translate(event, received_mono)
        if items and self._loop is not None:
            self._loop.call_soon_threadsafe(self._enqueue, items)
        return 0

    def _drain(self, address: int) -> Iterator[object]:
        """Empty the wrapper's internal per-reader queue (it keeps every event forever otherwise)."""
        while (queued := self._cp.get_event(address, timeout=-1)) is not None:
            yield queued

    def _enqueue(self, items: list[Observation]) -> None:
        for item in items:
            try:
                self.observations.put_nowait(item)
            except asyncio.QueueFull:
                self.dropped_observations += 1

    def _watch(self, ctx: object, now: float) -> None:
        """Runs in the refresh thread with the CP lock held: call `ctx`, never the locking wrapper."""
        if self.watch_failure is not None:
            return
        try:
            self._check_links(ctx, now)
        except Exception as failure:  # noqa: BLE001 - a thread has nobody to raise to: keep it for check()
            self.watch_failure = failure

    def _report(self, item: Observation) -> None:
        """From the refresh thread: hand a link change to the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._enqueue, [item])

    def _check_links(self, ctx: Any, now: float) -> None:
        online, sessions = ctx.status(), ctx.sc_status()
        for index, address in enumerate(self._cp.pd_addr):
            health = self._health[address]
            name = self._by_address[address].name
            last_reply = self._channel.last_reply.get(address, float("-inf"))
            answering = now - last_reply < SILENCE_S
            up = bool(online >> index & 1) and answering and (not self.secure or bool(sessions >> index & 1))
            if up:
                if health.fault is not None:
                    self._report(ReaderRestored(name, health.fault, "reader online"))
                health.fault, health.up, health.up_once, health.reenable = None, True, True, False
                continue
            if health.up:
                health.up, health.attempt_since, health.answering_since = False, now, None  # replies before now were the old session
            if health.reenable:
                if ctx.is_pd_enabled(index) and now - health.disabled_at < RETRY_S:
                    # libosdp applies a disable later, in its own state machine (seen: over 50 ms on a
                    # busy CPU); an enable before that is refused, and the disable then lands and
                    # leaves the reader off for good
                    continue
                ctx.enable_pd(index)  # still enabled after RETRY_S: the disable never landed, nothing to undo
                health.reenable, health.attempt_since, health.answering_since = False, now, None
                continue
            answered = last_reply > health.attempt_since
            if answered and health.answering_since is None:
                health.answering_since = now
            first_session = health.fault is None and not health.up_once
            grace = RETRY_S if first_session else RETURN_HANDSHAKE_S
            if now - (health.answering_since or health.attempt_since) < grace and (answered or first_session):
                # A session is being set up (the first one, or a down reader answering again): a
                # reader coming back from OFFLINE is not a SECURE_CHANNEL fault until its handshake
                # had its time (seen: over 2 s with the CPU saturated), and is not re-enabled meanwhile.
                continue
            reason, detail = self._diagnose(answered)
            if health.fault is not reason:
                health.fault = reason
                self._report(ReaderFault(name, reason, detail))
            if now >= health.retry_at:
                health.retry_at = now + RETRY_S
                if ctx.is_pd_enabled(index):
                    ctx.disable_pd(index)
                health.reenable, health.disabled_at = True, now

    def _diagnose(self, answered: bool) -> tuple[FaultReason, str]:
        if answered and self.secure:
            return FaultReason.SECURE_CHANNEL, "reader answers but refuses the secure channel (wrong key?)"
        port_error = f"; port error: {self._channel.error}" if self._channel.error else ""
        return FaultReason.OFFLINE, f"no reply for {SILENCE_S:g} s{port_error}"

    def _address(self, reader: str) -> int:
        try:
            return self.readers[reader].address
        except KeyError:
            raise ValueError(f"no OSDP reader named {reader!r} on this bus") from None

    def _pd_info(self, reader: OsdpReader) -> osdp.PDInfo:
        if not self.secure:
            return osdp.PDInfo(reader.address, None, scbk=None, name=reader.name)
        if reader.key_file is None:
            raise ValueError(f"OSDP reader {reader.name!r} needs a key file (secure channel is on)")
        return osdp.PDInfo(
            reader.address, None, scbk=load_key(reader.key_file), name=reader.name,
            flags=[osdp.LibFlag.EnforceSecure],
        )

    def _with_channel(self, info: osdp.PDInfo) -> osdp.PDInfo:
        info.channel = self._channel
        return info


def _timer_count(ms: int) -> int:
    """OSDP timers count 100 ms units; libosdp 3.2.9's binding keeps one byte of it."""
    return min(255, max(1, round(ms / OUTPUT_TIMER_UNIT_MS)))
