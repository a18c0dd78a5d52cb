"""A GSM modem simulator on one end of a socat pty pair: answers AT commands, records SMS.

It speaks what drivers/modem/at.py needs (AT, ATE0, +CMEE, +CPIN, +CSQ, +CREG, +CMGF,
+CNMI, +CMGS in PDU mode) and can misbehave on demand, as real modems do:

    ok          answers as a registered modem with good signal
    error       answers ERROR to AT+CMGS (the SIM out of credit, the network refusing)
    silent      answers nothing at all (a hung modem, a pulled USB cable that still enumerates)
    no_network  +CREG: 0,2 (searching) and +CMS ERROR: 331 to a send
    unconfirmed gives the > prompt and takes the PDU, then never says +CMGS nor OK (a modem whose
                network never acknowledges the submit); the PDU is still recorded in `submitted`

`confirm_after_s` makes an ok modem answer a submit that late (a slow network).

Messages are recorded (long ones joined from their parts) with the monotonic time they came
in; a status report (+CDS) follows each part unless `reports` is off.

    python -m edge.hil.modem_sim --port /dev/pts/7 [--mode ok]
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

import serial

from edge.drivers.modem.pdu import decode_submit


class Mode(StrEnum):
    OK = "ok"
    ERROR = "error"
    SILENT = "silent"
    NO_NETWORK = "no_network"
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True, slots=True)
class Message:
    number: str
    text: str
    at: float  # monotonic, when the last part came in


def _semi(digits: str) -> str:
    digits += "F" if len(digits) % 2 else ""
    return "".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))


def status_report_pdu(reference: int, number: str, status: int = 0) -> str:
    digits = number.lstrip("+")
    kind = "91" if number.startswith("+") else "81"
    stamp = "62113000000000"  # 2026-11-03 00:00:00, +0
    return f"0006{reference:02X}{len(digits):02X}{kind}{_semi(digits)}{stamp}{stamp}{status:02X}"


class ModemSimulator:
    def __init__(self, port: str, mode: Mode = Mode.OK, pin: str | None = None, reports: bool = True,
                 confirm_after_s: float = 0.0) -> None:
        self.port = port
        self.confirm_after_s = confirm_after_s
        self.submitted: list[str] = []  # the number of every submit taken, confirmed or not, in order
        self.mode = mode
        self.pin = pin
        self.unlocked = pin is None
        self.reports = reports
        self.messages: list[Message] = []
        self.commands: list[str] = []
        self._parts: dict[tuple[str, int], dict[int, str]] = {}
        self._reference = 0
        self._stop = threading.Event()
        self._serial = serial.Serial(port, 115200, timeout=0.05)
        self._thread = threading.Thread(target=self._serve, name="modem-sim", daemon=True)

    def start(self) -> "ModemSimulator":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._serial.close()

    def __enter__(self) -> "ModemSimulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        buffer = b""
        pending_pdu: int | None = None  # AT+CMGS=<len> seen: the next chunk up to ^Z is the PDU
        while not self._stop.is_set():
            try:
                buffer += self._serial.read(256)
            except (serial.SerialException, OSError):
                return
            while True:
                if pending_pdu is not None:
                    if b"\x1a" not in buffer:
                        break
                    pdu, buffer = buffer.split(b"\x1a", 1)
                    pending_pdu = None
                    self._message(pdu.decode("ascii", "replace").strip())
                    continue
                if b"\r" not in buffer:
                    break
                line, buffer = buffer.split(b"\r", 1)
                command = line.decode("ascii", "replace").strip()
                if not command:
                    continue
                self.commands.append(command)
                if self.mode is Mode.SILENT:
                    continue
                if command.upper().startswith("AT+CMGS="):
                    if self.mode is Mode.ERROR:
                        self._say("+CMS ERROR: 500")
                    elif self.mode is Mode.NO_NETWORK:
                        self._say("+CMS ERROR: 331")
                    else:
                        self._serial.write(b"\r\n> ")
                        pending_pdu = int(command.split("=", 1)[1])
                    continue
                self._answer(command.upper())

    def _answer(self, command: str) -> None:
        if command in ("AT", "ATE0", "AT+CMEE=1", "AT+CMGF=0") or command.startswith("AT+CNMI="):
            self._say("OK")
        elif command == "AT+CPIN?":
            self._say(f"+CPIN: {'READY' if self.unlocked else 'SIM PIN'}", "OK")
        elif command.startswith("AT+CPIN="):
            if command.split("=", 1)[1].strip('"') == self.pin:
                self.unlocked = True
                self._say("OK")
            else:
                self._say("+CME ERROR: 16")
        elif command == "AT+CSQ":
            self._say("+CSQ: 99,99" if self.mode is Mode.NO_NETWORK else "+CSQ: 21,0", "OK")
        elif command == "AT+CREG?":
            self._say("+CREG: 0,2" if self.mode is Mode.NO_NETWORK else "+CREG: 0,1", "OK")
        else:
            self._say("ERROR")

    def _message(self, pdu: str) -> None:
        try:
            number, text, concat = decode_submit(pdu)
        except (ValueError, IndexError, UnicodeDecodeError):
            self._say("+CMS ERROR: 304")  # invalid PDU mode parameter
            return
        self.submitted.append(number)
        if self.mode is Mode.UNCONFIRMED:
            return
        if self.confirm_after_s:
            self._stop.wait(self.confirm_after_s)
        self._reference = (self._reference + 1) % 256
        reference = self._reference
        if concat is None:
            self.messages.append(Message(number, text, time.monotonic()))
        else:
            chain, total, index = concat
            parts = self._parts.setdefault((number, chain), {})
            parts[index] = text
            if len(parts) == total:
                self.messages.append(Message(number, "".join(parts[i] for i in sorted(parts)), time.monotonic()))
                del self._parts[(number, chain)]
        self._say(f"+CMGS: {reference}", "OK")
        if self.reports:
            self._say(f"+CDS: {len(status_report_pdu(reference, number)) // 2 - 1}", status_report_pdu(reference, number))

    def _say(self, *lines: str) -> None:
        self._serial.write(b"".join(f"\r\n{line}\r\n".encode() for line in lines))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.hil.modem_sim", description=__doc__.splitlines()[0])
    parser.add_argument("--port", required=True, help="the simulator's end of a pty pair")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default="ok")
    parser.add_argument("--pin")
    args = parser.parse_args()
    simulator = ModemSimulator(args.port, Mode(args.mode), args.pin).start()
    try:
        while True:
            time.sleep(1)
            for message in simulator.messages:
                print(f"{message.number}: {message.text}", flush=True)
            simulator.messages.clear()
    except KeyboardInterrupt:
        simulator.stop()


if __name__ == "__main__":
    main()
