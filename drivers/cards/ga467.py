"""Second-generation Chinese resident ID card readers: the GA 467 serial protocol.

Frame (both directions), 115200 8N1 by default:

    AA AA AA 96 69 | LEN1 LEN2 | request: CMD PARA | data | CHK
                   |           | reply:   SW1 SW2 SW3   |      |

LEN is big-endian and counts every byte after itself: CMD PARA (or SW1 SW2 SW3), the data and
CHK. CHK is the XOR of every byte from LEN1 through the last data byte. SW3 is the reader's own
status: 0x90 success, 0x9F card found, 0x80 find failed, 0x81 select failed, 0x41 read failed,
0x31/0x32 card/SAM authentication failed, 0x10 checksum error in our request, 0x11 length
error, 0x21 bad command (full table: "身份证阅读器接口使用说明", Ministry of Public Security
First Research Institute, summarised at softs.im "身份证阅读器通信协议").

Commands and their replies (literal frames from that document and public drivers, e.g.
IDCardDemo README and several Android reader classes):
  find card    20 01: AA AA AA 96 69 00 03 20 01 22
      reply         : AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97   (4 data bytes, zeros)
  select card  20 02: AA AA AA 96 69 00 03 20 02 21
      reply         : AA AA AA 96 69 00 0C 00 00 90 + 8 data bytes + 9C
                      The 8 bytes are documented as the card's serial (GA/T 490 "居民身份证
                      专用集成电路序列号" is also 8 bytes), but common SAM modules return
                      zeros, so nothing here treats them as a credential.
  read basic   30 01: AA AA AA 96 69 00 03 30 01 32
      reply         : AA AA AA 96 69 05 08 00 00 90 01 00 04 00 + 256 text + 1024 photo + CHK
                      (1295 bytes; 01 00 and 04 00 are the text and photo lengths, big-endian)
  failure, e.g.     : AA AA AA 96 69 00 04 00 00 80 84 (find card failed)

Text is UCS-2 little-endian in the GA/T 490 layout (bytes): name 30, sex 2, nation 4, birth 16,
address 70, ID number 36, issuing authority 30, valid from 16, valid to 16, reserved 36. The
photo is a 1024-byte WLT image. Privacy: `parse_basic_info` keeps only the name and the 18-char
ID number, in an object whose repr shows neither; the gateway stores a keyed hash of the number
(made by the credential store, `CredentialStore.id_key_for`, the one way ID numbers are hashed)
and its last four characters, and never logs or stores the text or the photo. The registration
desk's read session is `edge.drivers.cards.ga467_desk`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from edge.drivers.cards.observations import DropCause, DropCounts, FrameDropped

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
_HEADER = len(PREAMBLE) + 2
MAX_LENGTH = 0x090A  # largest documented reply: text + photo + fingerprints (2321-byte frame)

TEXT_LEN = 256
PHOTO_LEN = 1024
_TEXT_FIELDS = (  # GA/T 490 machine-readable text, in order, byte lengths
    ("name", 30),
    ("sex", 2),
    ("nation", 4),
    ("birth", 16),
    ("address", 70),
    ("id_number", 36),
    ("authority", 30),
    ("valid_from", 16),
    ("valid_to", 16),
    ("reserved", 36),
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


class Command(enum.Enum):
    """Requests a gateway sends, as (CMD, PARA)."""

    FIND_CARD = (0x20, 0x01)
    SELECT_CARD = (0x20, 0x02)
    READ_BASIC_INFO = (0x30, 0x01)


class Status(enum.IntEnum):
    """SW3 values a reader answers with (those a driver acts on)."""

    SUCCESS = 0x90
    CARD_FOUND = 0x9F
    FIND_FAILED = 0x80
    SELECT_FAILED = 0x81
    READ_FAILED = 0x41
    CHECKSUM_ERROR = 0x10
    LENGTH_ERROR = 0x11
    COMMAND_ERROR = 0x21


class Direction(enum.Enum):
    """Which side's frames a parser reads: the gateway reads replies, a simulator requests."""

    REQUEST = 2  # bytes of CMD PARA
    REPLY = 3  # bytes of SW1 SW2 SW3


@dataclass(frozen=True, slots=True)
class Request:
    cmd: int
    para: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Reply:
    sw1: int
    sw2: int
    sw3: int
    data: bytes = field(default=b"", repr=False)  # may hold identity text: never in logs

    @property
    def ok(self) -> bool:
        return self.sw3 in (Status.SUCCESS, Status.CARD_FOUND)


def _xor(data: bytes) -> int:
    checksum = 0
    for byte in data:
        checksum ^= byte
    return checksum


def _frame(head: bytes, data: bytes) -> bytes:
    length = len(head) + len(data) + 1
    if length > MAX_LENGTH:
        raise ValueError(f"GA 467 frame body of {length} bytes exceeds {MAX_LENGTH}")
    body = length.to_bytes(2, "big") + head + data
    return PREAMBLE + body + bytes([_xor(body)])


def encode_request(cmd: int, para: int, data: bytes = b"") -> bytes:
    """A request frame, e.g. encode_request(0x20, 0x01) is the find-card command."""
    return _frame(bytes([cmd, para]), data)


def encode_reply(sw1: int, sw2: int, sw3: int, data: bytes = b"") -> bytes:
    """A reply frame as a reader sends it (for simulators and tests)."""
    return _frame(bytes([sw1, sw2, sw3]), data)


class Ga467Parser:
    """Incremental parser of GA 467 frames; hunts for the preamble after any bad frame.

    A frame's length is trusted only up to MAX_LENGTH and checked by the XOR: a frame cut short
    is detected when its checksum fails or, in a request/reply session, by `flush()` at the end
    of the reply window.
    """

    def __init__(self, direction: Direction = Direction.REPLY) -> None:
        self.drops = DropCounts()
        self._head_len = direction.value
        self._direction = direction
        self._buf = bytearray()
        self._dropping = False  # inside bytes already counted as one drop

    def feed(self, data: bytes) -> list[Request | Reply | FrameDropped]:
        self._buf += data
        out: list[Request | Reply | FrameDropped] = []
        while True:
            start = self._buf.find(PREAMBLE)
            if start < 0:
                self._discard(len(self._buf) - _preamble_prefix_len(self._buf), out)
                return out
            self._discard(start, out)
            if len(self._buf) < _HEADER:
                return out
            length = int.from_bytes(self._buf[len(PREAMBLE) : _HEADER], "big")
            if length > MAX_LENGTH:
                self._reject(DropCause.OVERSIZED, out)
                continue
            if length < self._head_len + 1:
                self._reject(DropCause.MALFORMED, out)
                continue
            end = _HEADER + length
            if len(self._buf) < end:
                return out
            body = bytes(self._buf[len(PREAMBLE) : end])
            if _xor(body) != 0:
                self._reject(DropCause.BAD_CHECKSUM, out)
                continue
            del self._buf[:end]
            self._dropping = False
            out.append(self._decode(body[2:-1]))

    def flush(self) -> list[FrameDropped]:
        """End of a reply window: bytes still waiting (a cut-short frame) are dropped."""
        pending = bool(self._buf)
        self._buf.clear()
        if pending and not self._dropping:
            self._dropping = True
            return [self.drops.add(DropCause.TRUNCATED)]
        return []

    def _decode(self, content: bytes) -> Request | Reply:
        head, data = content[: self._head_len], content[self._head_len :]
        if self._direction is Direction.REQUEST:
            return Request(head[0], head[1], data)
        return Reply(head[0], head[1], head[2], data)

    def _discard(self, count: int, out: list[Request | Reply | FrameDropped]) -> None:
        if count <= 0:
            return
        del self._buf[:count]
        if not self._dropping:
            self._dropping = True
            out.append(self.drops.add(DropCause.GARBAGE))

    def _reject(self, cause: DropCause, out: list[Request | Reply | FrameDropped]) -> None:
        """Drop a bad frame and resume the hunt one byte into it (a real frame may start there)."""
        del self._buf[:1]
        self._dropping = True
        out.append(self.drops.add(cause))


def _preamble_prefix_len(buf: bytearray) -> int:
    """Length of the longest tail of `buf` that could be the start of a preamble."""
    for size in range(min(len(PREAMBLE) - 1, len(buf)), 0, -1):
        if buf.endswith(PREAMBLE[:size]):
            return size
    return 0


@dataclass(frozen=True, slots=True, repr=False)
class IdentityText:
    """The two fields registration needs from an ID card; repr never shows them."""

    name: str
    id_number: str

    def __repr__(self) -> str:
        return "IdentityText(<redacted>)"

    @property
    def last_four(self) -> str:
        return self.id_number[-4:]


def id_number_is_valid(number: str) -> bool:
    """GB 11643: 17 digits and an ISO 7064 MOD 11-2 check character (0-9 or X)."""
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS))
    return number[17] == _ID_CHECK[total % 11]


def parse_basic_info(data: bytes) -> IdentityText:
    """Name and ID number from a successful read-basic-info reply's data.

    Raises ValueError, with a message that never quotes the card's content, when the layout
    is not 2+2 length bytes, 256 text bytes and 1024 photo bytes, or the ID number fails its
    check character, or the name is empty.
    """
    if len(data) != 4 + TEXT_LEN + PHOTO_LEN:
        raise ValueError(f"basic info is {len(data)} bytes, expected {4 + TEXT_LEN + PHOTO_LEN}")
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    if (text_len, photo_len) != (TEXT_LEN, PHOTO_LEN):
        raise ValueError(f"basic info declares text {text_len} and photo {photo_len} bytes")
    fields = _split_text(data[4 : 4 + TEXT_LEN])
    try:
        name = fields["name"].decode("utf-16-le").strip(" \x00")
        id_number = fields["id_number"].decode("utf-16-le").strip(" \x00")
    except UnicodeDecodeError:
        raise ValueError("basic info text is not valid UCS-2") from None
    if not id_number_is_valid(id_number):
        raise ValueError("basic info ID number fails the GB 11643 check")
    if not name or not name.isprintable():
        raise ValueError("basic info name is empty or holds control characters")
    return IdentityText(name=name, id_number=id_number)


def encode_basic_info(name: str, id_number: str, photo: bytes = bytes(PHOTO_LEN), **text: str) -> bytes:
    """Read-basic-info reply data for a simulated card (other GA/T 490 fields by keyword)."""
    values = {"name": name, "id_number": id_number, **text}
    unknown = values.keys() - {field_name for field_name, _ in _TEXT_FIELDS}
    if unknown:
        raise ValueError(f"unknown GA/T 490 text fields: {sorted(unknown)}")
    if len(photo) != PHOTO_LEN:
        raise ValueError(f"photo must be {PHOTO_LEN} bytes")
    out = bytearray(TEXT_LEN.to_bytes(2, "big") + PHOTO_LEN.to_bytes(2, "big"))
    for field_name, size in _TEXT_FIELDS:
        encoded = values.get(field_name, "").encode("utf-16-le")
        if len(encoded) > size:
            raise ValueError(f"GA/T 490 field {field_name} holds at most {size // 2} characters")
        out += encoded + " ".encode("utf-16-le") * ((size - len(encoded)) // 2)
    return bytes(out + photo)


def _split_text(text: bytes) -> dict[str, bytes]:
    fields, offset = {}, 0
    for name, size in _TEXT_FIELDS:
        fields[name] = text[offset : offset + size]
        offset += size
    return fields
