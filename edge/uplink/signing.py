"""The signed downlink envelope: every message from the cloud is one of these.

Wire form (JSON): {"v": 1, "signed": BASE64(envelope JSON bytes), "sig": BASE64(Ed25519 signature
of exactly those bytes)}. Signing the bytes as sent, not a re-serialisation, leaves nothing
to canonicalise. The envelope names its kind, the building it is for, when it was issued,
when it expires and a random nonce; `Verifier` refuses anything unsigned, badly signed,
for another building or another topic, expired, valid for too long, replayed or malformed,
with a reason code, and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from edge.uplink.replay import NonceBook

ENVELOPE_VERSION = 1
MAX_TTL_S = 7 * 86400  # bounds the nonce book; the cloud re-signs what a long-offline gateway missed


class DownlinkKind(StrEnum):
    CHANGE_SET = "credentials.change_set"
    SNAPSHOT = "credentials.snapshot"
    COMMAND = "command"
    PULL = "pull"


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
        {"v": ENVELOPE_VERSION, "signed": base64.b64encode(signed).decode(), "sig": base64.b64encode(key.sign(signed)).decode()}
    ).encode()


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def _parse(payload: bytes) -> tuple[bytes, bytes | None]:
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

    def verify(self, payload: bytes, expected: set[str], now: float) -> Envelope:
        """The envelope if every check passes; raises DownlinkRefused otherwise. Records the nonce."""
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
        if not self.nonces.remember(envelope.nonce, envelope.expires_at, now):
            raise DownlinkRefused(Refusal.REPLAYED)
        return envelope
