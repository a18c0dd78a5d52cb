"""The signed downlink envelope: every message from the cloud is one of these.

Wire form (JSON): {"v": 1, "signed": BASE64(envelope JSON bytes), "sig": BASE64(Ed25519 signature
of exactly those bytes)}. Signing the bytes as sent, not a re-serialisation, leaves nothing
to canonicalise. The envelope names its kind, the building it is for, when it was issued,
when it expires and a random nonce; `Verifier` refuses anything unsigned, badly signed,
for another building or another topic, expired, valid for too long, replayed or malformed,
with a reason code, and changes nothing.

Anyone who can reach the broker can publish here, so a payload is measured before it is
parsed: at most `MAX_DOWNLINK_BYTES` long, the wire form one flat object and the signed
envelope nested at most `MAX_DEPTH` deep (100,000 `[` would otherwise make the JSON parser
raise RecursionError). A large payload is checked in a worker thread, so a few megabytes of
garbage never hold the loop that decides doors. The nonce is recorded, durably and off the
loop, before the caller may act on the envelope.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from edge.runtime import pools
from edge.runtime.pools import Pool
from edge.uplink.replay import NonceBook

ENVELOPE_VERSION = 1
MAX_TTL_S = 7 * 86400  # bounds the nonce book; the cloud re-signs what a long-offline gateway missed
MAX_DOWNLINK_BYTES = 4 * 2**20  # a credential snapshot of ~10,000 cards fits; a 10 MB message does not
MAX_DEPTH = 32  # the signed envelope's body is a few levels deep
CHECK_OFF_LOOP_BYTES = 64 * 1024  # parsing and hashing more than this takes milliseconds

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")


class DownlinkKind(StrEnum):
    CHANGE_SET = "credentials.change_set"
    SNAPSHOT = "credentials.snapshot"
    COMMAND = "command"
    PULL = "pull"
    CONFIG_APPLY = "config.apply"


class Refusal(StrEnum):
    """Why a downlink message was refused."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    NO_KEY = "no_cloud_key_configured"
    WRONG_BUILDING = "wrong_building"
    WRONG_KIND = "wrong_kind"
    EXPIRED = "expired"
    TOO_LONG = "expiry_too_far"
    REPLAYED = "replayed"
    BAD_BODY = "bad_body"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    NONCES_UNAVAILABLE = "nonce_book_unavailable"  # the nonce could not be made durable: not acted on
    FAILED = "failed"  # acting on it raised: a fault of ours, journaled instead of ending the uplink


class DownlinkRefused(Exception):
    def __init__(self, reason: Refusal, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: str
    building: str
    issued_at: float
    expires_at: float
    nonce: str
    body: dict[str, Any]

    def to_json(self) -> bytes:
        return json.dumps(
            {"kind": self.kind, "building": self.building, "issued_at": self.issued_at,
             "expires_at": self.expires_at, "nonce": self.nonce, "body": self.body},
            separators=(",", ":"),
        ).encode()


def seal(key: Ed25519PrivateKey, envelope: Envelope) -> bytes:
    """The wire form of a signed envelope (what the cloud publishes)."""
    signed = envelope.to_json()
    return json.dumps(
        {"v": ENVELOPE_VERSION, "signed": base64.b64encode(signed).decode(), "sig": base64.b64encode(key.sign(signed)).decode()},
        separators=(",", ":"),
    ).encode()


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def _bounded(text: bytes, depth: int, too_deep: str) -> None:
    """Refuse by size, then by nesting, before the recursive JSON parser sees `text`.

    Nesting is found without parsing: strings are cut out, then the innermost bracket pairs
    are peeled off, one level per round (a C-speed regex pass each). Brackets that stop
    pairing up are not JSON at all (100,000 `[` alone); pairs left after `depth` rounds are
    too deep (100,000 `[` closed by as many `]`)."""
    if len(text) > MAX_DOWNLINK_BYTES:
        raise DownlinkRefused(Refusal.TOO_LARGE, f"{len(text)} bytes, at most {MAX_DOWNLINK_BYTES}")
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    for _ in range(depth):
        if not brackets:
            return
        brackets, peeled = _INNERMOST.subn(b"", brackets)
        if not peeled:
            break
    if brackets:
        if _INNERMOST.search(brackets):
            raise DownlinkRefused(Refusal.TOO_DEEP, too_deep)
        raise DownlinkRefused(Refusal.MALFORMED, "brackets do not pair up")


def _parse(payload: bytes) -> tuple[bytes, bytes | None]:
    # unauthenticated: the wire form is one flat object, so one peeling round decides
    _bounded(payload, 1, "the wire form is one flat JSON object")
    try:
        wire = json.loads(payload)
        if not isinstance(wire, dict) or wire.get("v") != ENVELOPE_VERSION or not isinstance(wire.get("signed"), str):
            raise ValueError("not a version 1 envelope")
        signed = base64.b64decode(wire["signed"], validate=True)
        sig = wire.get("sig")
        return signed, None if sig in (None, "") else base64.b64decode(sig, validate=True)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as error:
        raise DownlinkRefused(Refusal.MALFORMED, str(error)[:200]) from None


def _envelope(signed: bytes) -> Envelope:
    _bounded(signed, MAX_DEPTH, f"the envelope nests deeper than {MAX_DEPTH}")
    try:
        raw = json.loads(signed)
        envelope = Envelope(
            kind=str(raw["kind"]), building=str(raw["building"]), issued_at=float(raw["issued_at"]),
            expires_at=float(raw["expires_at"]), nonce=str(raw["nonce"]), body=raw["body"],
        )
    except (ValueError, TypeError, KeyError) as error:
        raise DownlinkRefused(Refusal.MALFORMED, f"envelope: {error!r}"[:200]) from None
    if not isinstance(envelope.body, dict) or not 16 <= len(envelope.nonce) <= 128:
        raise DownlinkRefused(Refusal.MALFORMED, "envelope body must be an object and nonce 16-128 characters")
    return envelope


class Verifier:
    """Checks a downlink message against the cloud's key, this building, the clock and the nonce book."""

    def __init__(self, key: Ed25519PublicKey | None, building: str, nonces: NonceBook) -> None:
        self.key = key
        self.building = building
        self.nonces = nonces

    async def verify(self, payload: bytes, expected: set[str], now: float) -> Envelope:
        """The envelope if every check passes; raises DownlinkRefused otherwise. Records the nonce
        (durably: a replay after a power cut is still refused) before returning."""
        if len(payload) > CHECK_OFF_LOOP_BYTES:
            envelope = await pools.call(Pool.NETWORK, self.check, payload, expected, now)
        else:
            envelope = self.check(payload, expected, now)
        try:
            fresh = await self.nonces.remember(envelope.nonce, envelope.expires_at, now)
        except sqlite3.Error as error:
            raise DownlinkRefused(Refusal.NONCES_UNAVAILABLE, str(error)[:200]) from None
        if not fresh:
            raise DownlinkRefused(Refusal.REPLAYED)
        return envelope

    def check(self, payload: bytes, expected: set[str], now: float) -> Envelope:
        """Every check but the nonce (pure CPU work): raises DownlinkRefused, or returns the envelope."""
        signed, sig = _parse(payload)
        if sig is None:
            raise DownlinkRefused(Refusal.UNSIGNED)
        if self.key is None:
            raise DownlinkRefused(Refusal.NO_KEY)
        try:
            self.key.verify(sig, signed)
        except InvalidSignature:
            raise DownlinkRefused(Refusal.BAD_SIGNATURE) from None
        envelope = _envelope(signed)
        if envelope.building != self.building:
            raise DownlinkRefused(Refusal.WRONG_BUILDING, envelope.building[:64])
        if envelope.kind not in expected:
            raise DownlinkRefused(Refusal.WRONG_KIND, envelope.kind[:64])
        if now > envelope.expires_at:
            raise DownlinkRefused(Refusal.EXPIRED, f"expired {now - envelope.expires_at:.0f} s ago")
        if envelope.expires_at - now > MAX_TTL_S:
            raise DownlinkRefused(Refusal.TOO_LONG)
        return envelope
