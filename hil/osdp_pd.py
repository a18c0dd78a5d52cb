"""An OSDP reader (Peripheral Device) through libosdp's PD role, on one end of a serial line.

It writes real OSDP frames (Secure Channel when given a key) and records every command the
gateway sends it with the monotonic time it arrived, so tests and benchmarks see LED, buzzer
and output commands land. Card reads are raw 26-bit Wiegand with parity, as a reader sends them.

    with SimulatedOsdpReader(line.device_port, 115200, address=1, key=key) as reader:
        reader.tap(0x123456); reader.keys("1234#"); reader.tamper(True); reader.go_silent()
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import osdp

from edge.drivers.osdp.bus import refresh_often
from edge.drivers.osdp.channel import SerialChannel


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    command: dict[str, object]
    received_mono: float


class _PeripheralDevice(osdp.PeripheralDevice):
    """libosdp's PD refreshing as the gateway's bus does (every 2 ms, at once after a frame), so
    the simulator adds no latency of its own."""

    def __init__(self, *args: object, channel: SerialChannel, **kwargs: object) -> None:
        self._channel = channel
        super().__init__(*args, **kwargs)

    def refresh(self, event: threading.Event, lock: threading.Lock, ctx: object) -> None:  # type: ignore[override]
        refresh_often(event, lock, ctx, channel=self._channel)


def wiegand26(card: int) -> bytes:
    """A 24-bit card number as 26 Wiegand bits (even parity, data, odd parity), MSB first, padded."""
    if not 0 <= card < 1 << 24:
        raise ValueError(f"a 26-bit Wiegand card number is 24 bits, got {card:#x}")
    even = bin(card >> 12).count("1") % 2
    odd = 1 - bin(card & 0xFFF).count("1") % 2
    bits = even << 25 | card << 1 | odd
    return (bits << 6).to_bytes(4, "big")


class SimulatedOsdpReader:
    """One OSDP reader with LED, buzzer and one output, answering on `path`."""

    def __init__(self, path: str, baud: int, address: int, key: bytes | None) -> None:
        self._channel = SerialChannel(path, baud)
        caps = osdp.PDCapabilities([
            (osdp.Capability.OutputControl, 1, 1),
            (osdp.Capability.LEDControl, 1, 1),
            (osdp.Capability.AudibleControl, 1, 1),
            (osdp.Capability.CommunicationSecurity, 1, 1),
        ])
        self._pd = _PeripheralDevice(
            osdp.PDInfo(address, self._channel, scbk=key), caps, log_level=osdp.LogLevel.Emergency,
            command_handler=self._on_command, channel=self._channel,
        )
        self._received: list[ReceivedCommand] = []
        self._arrived = threading.Condition()
        self._running = False

    def __enter__(self) -> SimulatedOsdpReader:
        self.resume()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.go_silent()
        self._channel.close()

    def tap(self, card: int) -> None:
        """Present a card: a raw 26-bit Wiegand card-read event."""
        self._submit({"event": osdp.Event.CardRead, "reader_no": 0, "direction": 0,
                      "format": osdp.CardFormat.Wiegand, "length": 26, "data": wiegand26(card)})

    def keys(self, keys: str) -> None:
        """Press keys ('0'-'9', '*', '#') on the keypad."""
        self._submit({"event": osdp.Event.KeyPress, "reader_no": 0, "data": keys.encode("ascii")})

    def tamper(self, opened: bool) -> None:
        """Open or close the tamper switch (a local status report)."""
        self._submit({"event": osdp.Event.Status, "type": osdp.StatusReportType.Local,
                      "report": bytes([int(opened), 0])})

    def go_silent(self) -> None:
        """Stop answering polls, as a reader with a cut cable or no power."""
        if self._running:
            self._pd.stop()
            self._running = False

    def resume(self) -> None:
        if not self._running:
            self._pd.start()
            self._running = True

    @property
    def secure(self) -> bool:
        return bool(self._pd.is_sc_active())

    def commands(self) -> list[ReceivedCommand]:
        with self._arrived:
            return list(self._received)

    def wait_command(self, kind: int, after: int = 0, timeout: float = 5.0) -> ReceivedCommand | None:
        """The first command of `kind` (osdp.Command.*) at index >= `after`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for received in self._received[after:]:
                    if received.command.get("command") == kind:
                        return received
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)

    def _submit(self, event: dict[str, object]) -> None:
        if not self._pd.submit_event(event):
            raise RuntimeError(f"libosdp refused the event {event.get('event')}")

    def _on_command(self, command: dict[str, object]) -> tuple[int, None]:
        """Runs inside the PD's refresh: record and return, never call the PD from here."""
        received = ReceivedCommand(command, time.monotonic())
        with self._arrived:
            self._received.append(received)
            self._arrived.notify_all()
        self._pd.get_command(timeout=-1)  # drain the wrapper's own copy
        return 0, None
