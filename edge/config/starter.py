"""`edge init DIR`: a starter building config and a fresh building secret, owner-only.

The secret keys every credential (HMAC of the card serial), so it is made here from the
operating system's random source and never shipped: a key copied from an example would be
the same in every building. Nothing is overwritten: an existing secret may be the only key
to a credential store, and an existing config is someone's work.
"""

from __future__ import annotations

import os
import secrets
from importlib import resources
from pathlib import Path

CONFIG_NAME = "building.yaml"
SECRET_PATH = Path("secrets") / "building.key"
SECRET_BYTES = 32


class StarterExists(FileExistsError):
    """A config or secret is already there; nothing was written."""


def write(directory: Path, building_id: str) -> tuple[Path, Path]:
    """Write DIRECTORY/building.yaml and DIRECTORY/secrets/building.key; returns their paths.

    Directories this creates are 0700 and files 0600; every check is made before anything is
    written, and each file is created exclusively, so a second run changes nothing.
    """
    config, secret = directory / CONFIG_NAME, directory / SECRET_PATH
    existing = [str(path) for path in (config, secret) if os.path.lexists(path)]
    if existing:
        raise StarterExists(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; nothing was written")
    text = resources.files("edge.config").joinpath("starter.yaml").read_text(encoding="utf-8").replace("BUILDING_ID", building_id)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret.parent.mkdir(mode=0o700, exist_ok=True)
    _create(secret, secrets.token_hex(SECRET_BYTES) + "\n")
    _create(config, text)
    return config, secret


def _create(path: Path, text: str) -> None:
    """Create `path` 0600 (failing if it appeared meanwhile) and make it durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
