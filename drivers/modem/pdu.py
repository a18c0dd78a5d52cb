"""SMS PDUs (3GPP TS 23.040): SMS-SUBMIT in UCS2 for any text (Chinese included), split into
concatenated parts when long; and the SMS-STATUS-REPORT a network sends back.

PDU mode, not text mode, because text mode cannot carry Chinese on most modems' default
character set, and because a status report's reference is only reliably read from a PDU.
"""

from __future__ import annotations

from dataclasses import dataclass

UCS2_SINGLE = 70  # characters in one message
UCS2_PART = 67  # characters per part once a concatenation header takes 6 octets


@dataclass(frozen=True, slots=True)
class Submit:
    """One PDU ready for AT+CMGS: `length` is what AT+CMGS wants (TPDU octets, no SMSC)."""

    hex: str
    length: int


def _semi_octets(digits: str) -> str:
    if len(digits) % 2:
        digits += "F"
    return "".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))


def _address(number: str) -> str:
    international = number.startswith("+")
    digits = number.lstrip("+")
    if not digits.isdigit():
        raise ValueError(f"not a phone number: {number!r}")
    return f"{len(digits):02X}{'91' if international else '81'}{_semi_octets(digits)}"


def _utf16_units(text: str) -> list[bytes]:
    """UCS2 is UTF-16BE here; a character outside the BMP is two units kept in one part."""
    return [char.encode("utf-16-be") for char in text]


def submit_pdus(number: str, text: str, reference: int, status_report: bool = True) -> list[Submit]:
    """The PDUs for `text` to `number`; `reference` (0-255) ties the parts of one long message."""
    chars = _utf16_units(text)
    if sum(len(c) for c in chars) <= UCS2_SINGLE * 2:
        parts = [b"".join(chars)]
    else:
        parts, current = [], b""
        for char in chars:
            if len(current) + len(char) > UCS2_PART * 2:
                parts.append(current)
                current = b""
            current += char
        parts.append(current)
    if len(parts) > 255:
        raise ValueError("message too long for one SMS chain")
    pdus = []
    for index, body in enumerate(parts, 1):
        udh = b"" if len(parts) == 1 else bytes([5, 0, 3, reference & 0xFF, len(parts), index])
        first = 0x01 | (0x20 if status_report else 0) | (0x40 if udh else 0)  # SUBMIT, SRR, UDHI
        # validity period absent (VPF 00): the network's default
        tpdu = f"{first:02X}00{_address(number)}0008{len(udh) + len(body):02X}{(udh + body).hex().upper()}"
        pdus.append(Submit("00" + tpdu, len(tpdu) // 2))
    return pdus


@dataclass(frozen=True, slots=True)
class StatusReport:
    reference: int  # the TP-MR the modem gave the message (+CMGS: <mr>)
    number: str
    delivered: bool
    status: int  # TP-ST: 0x00-0x1F delivered or passed on; higher: still trying or failed


def parse_status_report(pdu_hex: str) -> StatusReport:
    """An SMS-STATUS-REPORT PDU (with its SMSC prefix), as +CDS delivers it; ValueError if not one."""
    data = bytes.fromhex(pdu_hex)
    at = 1 + data[0]  # skip the SMSC address
    first = data[at]
    if first & 0x03 != 0x02:
        raise ValueError("not an SMS-STATUS-REPORT")
    reference = data[at + 1]
    digits_len, kind = data[at + 2], data[at + 3]
    octets = (digits_len + 1) // 2
    raw = data[at + 4: at + 4 + octets].hex().upper()
    digits = "".join(raw[i + 1] + raw[i] for i in range(0, len(raw), 2)).rstrip("F")
    at = at + 4 + octets + 7 + 7  # service centre time stamp, discharge time
    status = data[at]
    return StatusReport(reference, ("+" if kind == 0x91 else "") + digits, status < 0x20, status)


def decode_submit(pdu_hex: str) -> tuple[str, str, tuple[int, int, int] | None]:
    """(number, text, (reference, parts, index) or None) of an SMS-SUBMIT: what a modem simulator
    or a test reads back. UCS2 and GSM 7-bit (basic table, no header) are understood."""
    data = bytes.fromhex(pdu_hex)
    at = 1 + data[0]
    first = data[at]
    digits_len, kind = data[at + 2], data[at + 3]
    octets = (digits_len + 1) // 2
    raw = data[at + 4: at + 4 + octets].hex().upper()
    number = ("+" if kind == 0x91 else "") + "".join(raw[i + 1] + raw[i] for i in range(0, len(raw), 2)).rstrip("F")
    at += 4 + octets
    dcs = data[at + 1]
    at += 2
    vpf = (first >> 3) & 0x03
    at += {0: 0, 2: 1, 1: 7, 3: 7}[vpf]
    udl = data[at]
    user = data[at + 1:]
    concat = None
    if first & 0x40:
        udh_len = user[0]
        header = user[1: 1 + udh_len]
        if header[:2] == bytes([0, 3]):
            concat = (header[2], header[3], header[4])
        user = user[1 + udh_len:]
    if dcs & 0x0C == 0x08:
        return number, user.decode("utf-16-be"), concat
    septets, value = [], int.from_bytes(user, "little")
    for i in range(udl):
        septets.append((value >> (7 * i)) & 0x7F)
    return number, "".join(map(chr, septets)), concat
