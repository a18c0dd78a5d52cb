"""Per-reader Secure Channel Base Keys (SCBK) in secret files.

A key file holds the reader's 16-byte SCBK as 32 hex digits (surrounding whitespace allowed),
readable by the gateway user only. Keys come from `secrets` (the OS CSPRNG): libosdp's
`KeyStore.gen_key` draws from `random`, whose output can be predicted from earlier output.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

KEY_LEN = 16


class KeyFileError(ValueError):
    """A key file is missing, unreadable, readable by others, or not 32 hex digits."""


def generate_key_file(path: Path) -> None:
    """Write a fresh random SCBK to `path` (mode 0600); an existing file is never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(KEY_LEN) + "\n")


def load_key(path: Path) -> bytes:
    """Read one reader's SCBK; every problem is a KeyFileError naming the file, never the key."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read OSDP key file: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: OSDP key file must not be readable by group or others")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_LEN:
        raise KeyFileError(f"{path}: OSDP key file must hold {KEY_LEN * 2} hex digits")
    return key
