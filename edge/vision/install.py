"""Installing a model: its manifest and weights, checked, into STATE_DIR/models/NAME/.

A crop classifier installs the same way; a detector's `second_stage: NAME` finds it there.

The repository ships manifests, never weights; a technician brings the file. It is refused
unless its sha256 is the manifest's, and a licence that is not a known permissive one must be
accepted by name, so nobody deploys AGPL or all-rights-reserved weights by accident. The
copy is written to a temporary name, synced and renamed, so a crash never leaves half a model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge.vision import manifest as m

MANIFEST_NAME = "manifest.yaml"
PERMISSIVE = {"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "CC0-1.0", "CC-BY-4.0", "Unlicense"}


class InstallError(Exception):
    """Why a model was not installed; nothing was changed."""


class LicenceNotAccepted(InstallError):
    """The weights' licence is not a known permissive one and was not accepted by name."""


@dataclass(frozen=True, slots=True)
class Installed:
    name: str
    manifest: Path
    model: Path
    licence: str


def models_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "models"


def permissive(licence: str) -> bool:
    """True when the licence's first word is a permissive SPDX id (the rest may explain it)."""
    first = licence.split()[0] if licence.split() else ""
    return first in PERMISSIVE


def install(manifest_path: Path, state_dir: Path, source: Path | None = None, accept_licence: str | None = None) -> Installed:
    """Check and copy a model; raises ManifestError (bad manifest or sha256) or InstallError."""
    manifest_path = Path(manifest_path)
    manifest = m.load(manifest_path)
    source = Path(source) if source is not None else manifest_path.parent / manifest.file
    if not source.is_file():
        raise InstallError(f"no model file at {source}: give it with --from FILE")
    m.verify_file(manifest, source, str(manifest_path))
    if not permissive(manifest.licence) and accept_licence != manifest.licence:
        raise LicenceNotAccepted(
            f"the weights' licence is {manifest.licence!r}, not a known permissive one; read it, then install with "
            f"--accept-licence '{manifest.licence}'")
    target = models_dir(state_dir) / manifest.name
    target.mkdir(parents=True, exist_ok=True)
    model_path, manifest_copy = target / manifest.file, target / MANIFEST_NAME
    _atomic_copy(source, model_path)
    m.verify_file(manifest, model_path, str(manifest_path))  # what landed on disk is what was checked
    _atomic_copy(manifest_path, manifest_copy)
    return Installed(manifest.name, manifest_copy, model_path, manifest.licence)


def installed(state_dir: Path) -> list[Path]:
    """The manifest of every installed model."""
    return sorted(models_dir(state_dir).glob(f"*/{MANIFEST_NAME}"))


def _atomic_copy(source: Path, target: Path) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
