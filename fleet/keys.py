"""The fleet's Ed25519 signing key: generated once, kept private; its public half goes in every
gateway's config (`uplink.cloud_public_key`). Signing itself is the gateway's own code
(edge.uplink.signing.seal), so the two sides cannot disagree on the envelope."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.uplink.signing import Envelope, seal

DEFAULT_TTL_S = 300.0


def generate(directory: Path) -> tuple[Path, Path]:
    """DIR/cloud.key (private, 0600, never overwritten) and DIR/cloud.pub (for the gateways)."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "cloud.key", directory / "cloud.pub"
    if private.exists():
        raise FileExistsError(f"{private} exists; a new key would lock every gateway out until reconfigured")
    key = Ed25519PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def load(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def sign(key: Ed25519PrivateKey, building: str, kind: str, body: dict[str, Any], ttl_s: float = DEFAULT_TTL_S) -> tuple[bytes, str]:
    """The wire form of a signed envelope for `building`, and its nonce."""
    now = time.time()
    nonce = secrets.token_hex(16)
    return seal(key, Envelope(str(kind), building, now, now + ttl_s, nonce, body)), nonce


def nonce_of(payload: bytes) -> str:
    return json.loads(base64.b64decode(json.loads(payload)["signed"]))["nonce"]
