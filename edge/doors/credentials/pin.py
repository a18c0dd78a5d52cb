"""PIN hashes for card+PIN doors: scrypt from the standard library, one salt per credential.

Parameters (stored with each hash, so they can be raised later without a migration):
N = 2**14, r = 8, p = 1, 16-byte random salt, 32-byte digest. That costs 16 MiB and
about 50 ms per check on a small gateway core: slow enough that a copied store file
costs an attacker real work per PIN guess, fast enough for one check per card+PIN
read. A 4-6 digit PIN space is small, so the slow KDF raises cost, it does not make
guessing impossible; the door's attempt counter is the other half of the defence.
Because the check is slow, `decide` runs it only at a reader that requires a PIN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
DIGEST_BYTES = 32
PIN_PATTERN = re.compile(r"^[0-9]{4,8}$")

# Bounds for hashes read from the store or a change set: a hostile N must not exhaust memory.
_MAX_N = 2**17
_MAX_R = 16
_MAX_P = 4


@dataclass(frozen=True, slots=True)
class PinHash:
    """A salted scrypt digest of a PIN, with the parameters that made it."""

    n: int
    r: int
    p: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.n > _MAX_N:
            raise ValueError(f"scrypt N must be a power of two up to {_MAX_N}, got {self.n}")
        if not 1 <= self.r <= _MAX_R or not 1 <= self.p <= _MAX_P:
            raise ValueError(f"scrypt r={self.r} p={self.p} out of range")
        if len(self.salt) < 8 or len(self.digest) < 16:
            raise ValueError("PIN hash salt or digest too short")

    @classmethod
    def create(cls, pin: str) -> PinHash:
        """Hash a new PIN with a fresh random salt; raise ValueError for a malformed PIN."""
        if not PIN_PATTERN.match(pin):
            raise ValueError("a PIN is 4 to 8 digits")
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, _scrypt(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, DIGEST_BYTES))

    @classmethod
    def parse(cls, text: str) -> PinHash:
        """Read the stored form ``scrypt$N$r$p$<salt b64>$<digest b64>``."""
        parts = text.split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError("PIN hash must look like 'scrypt$N$r$p$salt$digest'")
        try:
            n, r, p = (int(x) for x in parts[1:4])
            salt = base64.b64decode(parts[4], validate=True)
            digest = base64.b64decode(parts[5], validate=True)
        except ValueError as exc:
            raise ValueError(f"PIN hash is malformed: {exc}") from None
        return cls(n, r, p, salt, digest)

    def matches(self, pin: str) -> bool:
        """Run the KDF on the entered PIN and compare in constant time. Slow by design."""
        if not PIN_PATTERN.match(pin):
            return False
        candidate = _scrypt(pin, self.salt, self.n, self.r, self.p, len(self.digest))
        return hmac.compare_digest(candidate, self.digest)

    def __str__(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        digest = base64.b64encode(self.digest).decode()
        return f"scrypt${self.n}${self.r}${self.p}${salt}${digest}"


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 2**20
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)
