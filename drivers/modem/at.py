"""A GSM/4G modem over a serial port, with AT commands (3GPP TS 27.005/27.007).

Blocking by design: every call runs in a worker thread (the caller's `asyncio.to_thread`),
one at a time. The driver parses and reports; it never decides whom to tell or when to
retry. Each failure is a typed exception that says what did not happen: the modem answered
ERROR, said nothing within the deadline, has no network, or wants a PIN it was not given.

Messages go in PDU mode (UCS2, see drivers/modem/pdu.py) with a status report requested;
the network's reports arrive unsolicited as `+CDS: <len>` and a PDU line, collected into
`reports` whenever the port is read.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass

import serial

from edge.drivers.modem.pdu import StatusReport, parse_status_report, submit_pdus

FINAL_OK = "OK"
_FINAL_ERROR = re.compile(r"^(ERROR|\+CMS ERROR:.*|\+CME ERROR:.*|NO CARRIER)$")


class ModemError(Exception):
    """The modem refused (ERROR, +CMS ERROR: n) or the port failed."""


class NoAnswer(ModemError):
    """Nothing came back within the deadline."""


class NoNetwork(ModemError):
    """Not registered on a network (AT+CREG? stat not 1 or 5): nothing can be sent."""


class SimLocked(ModemError):
    """The SIM wants a PIN (or PUK) the gateway does not have or that was refused."""


@dataclass(frozen=True, slots=True)
class ModemStatus:
    signal: int | None  # AT+CSQ rssi 0-31, None when unknown (99)
    registration: int  # AT+CREG? stat: 1 home, 5 roaming


class AtModem:
    def __init__(self, port: str, baud: int = 115200, timeout_s: float = 10.0, pin: str | None = None) -> None:
        """`timeout_s` bounds every wait: each command's answer, the > prompt and the submit's confirmation."""
        self.port_path = port
        self.baud = baud
        self.timeout_s = timeout_s
        self.pin = pin
        self.reports: deque[StatusReport] = deque(maxlen=256)
        self._port: serial.Serial | None = None
        self._buffer = b""
        self._reference = 0

    # --- the port --------------------------------------------------------------------

    def open(self) -> ModemStatus:
        """Open the port and bring the modem to a known state; returns its signal and registration."""
        self.close()
        try:
            self._port = serial.Serial(self.port_path, self.baud, timeout=0.1, write_timeout=self.timeout_s)
        except (serial.SerialException, OSError) as error:
            raise ModemError(f"cannot open {self.port_path}: {error}") from None
        self._buffer = b""
        self.command("AT")
        self.command("ATE0")  # no echo: every line read is an answer
        self.command("AT+CMEE=1")  # numeric error codes rather than a bare ERROR
        self._unlock()
        status = self.status()
        self.command("AT+CMGF=0")  # PDU mode
        self.command("AT+CNMI=2,1,0,1,0")  # status reports come to us as +CDS
        return status

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None

    def _unlock(self) -> None:
        state = self._value(self.command("AT+CPIN?"), "+CPIN:")
        if state == "READY":
            return
        if state == "SIM PIN" and self.pin:
            self.command(f"AT+CPIN={self.pin}")
            if self._value(self.command("AT+CPIN?"), "+CPIN:") == "READY":
                return
            raise SimLocked("the SIM refused the PIN")
        raise SimLocked(f"the SIM says {state!r}" + ("" if self.pin else " and no PIN is configured"))

    def status(self) -> ModemStatus:
        """Signal quality and network registration; NoNetwork when not registered."""
        rssi = int(self._value(self.command("AT+CSQ"), "+CSQ:").split(",")[0])
        registration = int(self._value(self.command("AT+CREG?"), "+CREG:").split(",")[1])
        if registration not in (1, 5):
            raise NoNetwork(f"not registered (AT+CREG stat {registration}), signal {rssi}")
        return ModemStatus(None if rssi == 99 else rssi, registration)

    # --- messages --------------------------------------------------------------------

    def send(self, number: str, text: str) -> list[int]:
        """Send `text` (any script) to `number`; returns the network's reference of each part."""
        self._reference = (self._reference + 1) % 256
        references = []
        for pdu in submit_pdus(number, text, self._reference):
            self._write(f"AT+CMGS={pdu.length}\r".encode())
            self._read_until(lambda: b">" in self._buffer, "the > prompt for AT+CMGS", final_error=True)
            before, _, self._buffer = self._buffer.partition(b">")
            self._buffer, rest = before + b"\n", self._buffer
            self._take_lines(final=False)  # a delivery report may precede the prompt
            self._buffer = rest
            # The configured timeout bounds this wait too: an alarm SMS that a modem never confirms must
            # fail (and be retried, or go to the next recipient) within it, not after a fixed minute.
            lines = self.command(pdu.hex, terminator="\x1a")
            references.append(int(self._value(lines, "+CMGS:").split(",")[0]))
        return references

    def poll(self) -> list[StatusReport]:
        """Read whatever the modem said unasked; returns the delivery reports seen since the last poll."""
        self._read_available()
        self._take_lines(final=False)
        reports = list(self.reports)
        self.reports.clear()
        return reports

    # --- AT plumbing -----------------------------------------------------------------

    def command(self, text: str, terminator: str = "\r", timeout_s: float | None = None) -> list[str]:
        """Send one command; its answer lines up to OK. ModemError on ERROR, NoAnswer on silence."""
        self._write((text + terminator).encode())
        answer: list[str] = []
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for line in self._take_lines(final=True):
                if line == FINAL_OK:
                    return answer
                if _FINAL_ERROR.match(line):
                    raise ModemError(f"{text[:20]}: {line}")
                answer.append(line)
            if time.monotonic() > deadline:
                raise NoAnswer(f"no answer to {text[:20]!r} within {timeout_s or self.timeout_s:g} s")
            self._read_available(wait=True)

    def _take_lines(self, final: bool) -> list[str]:
        """Complete lines from the buffer; +CDS reports are taken aside, never returned."""
        lines = []
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.strip(b"\r ").decode("ascii", "replace")
            if not line:
                continue
            if line.startswith("+CDS:"):
                rest = self._buffer.lstrip(b"\r\n ")
                if b"\n" not in rest:
                    self._buffer = raw + b"\n" + self._buffer  # its PDU line has not come yet
                    break
                pdu, self._buffer = rest.split(b"\n", 1)
                try:
                    self.reports.append(parse_status_report(pdu.strip().decode("ascii")))
                except (ValueError, IndexError):
                    pass  # a garbled report: the message stays unconfirmed, which is journaled
                continue
            lines.append(line)
        return lines

    def _read_until(self, done, what: str, final_error: bool = False) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not done():
            if final_error and re.search(rb"(ERROR[^\n]*)\r?\n", self._buffer):
                line = re.search(rb"((\+CMS )?ERROR[^\r\n]*)", self._buffer).group(1).decode()
                self._buffer = b""
                raise ModemError(f"AT+CMGS: {line}")
            if time.monotonic() > deadline:
                raise NoAnswer(f"no answer: no {what} within {self.timeout_s:g} s")
            self._read_available(wait=True)

    def _read_available(self, wait: bool = False) -> None:
        port = self._require()
        try:
            waiting = port.in_waiting
            data = port.read(max(1, waiting)) if (waiting or wait) else b""
        except (serial.SerialException, OSError) as error:
            raise ModemError(f"port {self.port_path}: {error}") from None
        self._buffer += data
        if len(self._buffer) > 65536:
            self._buffer = self._buffer[-65536:]  # bounded: a babbling modem cannot eat memory

    def _write(self, data: bytes) -> None:
        try:
            self._require().write(data)
        except (serial.SerialException, OSError) as error:
            raise ModemError(f"port {self.port_path}: {error}") from None

    def _require(self) -> serial.Serial:
        if self._port is None:
            raise ModemError("the modem port is not open")
        return self._port

    @staticmethod
    def _value(lines: list[str], prefix: str) -> str:
        for line in lines:
            if line.startswith(prefix):
                return line[len(prefix):].strip().strip('"')
        raise ModemError(f"no {prefix} line in the answer {lines!r}")
