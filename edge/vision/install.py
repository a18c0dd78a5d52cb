"""Installing a model: its manifest and weights, checked, into STATE_DIR/models/NAME/.

A crop classifier installs the same way; a detector's `second_stage: NAME` finds it there.

The repository ships manifests, never weights: a technician brings the file (`install --from`),
or, when the manifest names a `url:`, `edge models fetch` downloads it (resuming a download that
stopped, with a progress line). Either way it is refused unless its sha256 is the manifest's, and
a licence that is not a known permissive one must be accepted by its SPDX id, so nobody deploys
AGPL or all-rights-reserved weights by accident. A download lands in STATE_DIR/models/.downloads/
and is checked there; the copy is written to a temporary name, synced and renamed, so neither a
crash nor a bad download ever leaves half a model. Installed files are 0640 in group `edge` (when
that group exists) whoever installs them, so the service reads what root installed.
"""

from __future__ import annotations

import asyncio
import grp
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.vision import manifest as m

MANIFEST_NAME = "manifest.yaml"
DOWNLOADS = ".downloads"
SERVICE_GROUP = "edge"  # the unit's Group=
CHUNK = 1 << 16
PERMISSIVE = {"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "CC0-1.0", "CC-BY-4.0", "Unlicense"}


class InstallError(Exception):
    """Why a model was not installed; nothing was changed."""


class LicenceNotAccepted(InstallError):
    """The weights' licence is not a known permissive one and was not accepted by name."""


class DownloadError(InstallError):
    """The download failed or stopped; a partial file is kept only when it can be resumed."""


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
    return m.spdx_id(licence) in PERMISSIVE


def check_licence(manifest: m.DetectorManifest | m.ClassifierManifest, accept_licence: str | None) -> None:
    """Raises LicenceNotAccepted unless the licence is permissive or accepted by its SPDX id (or spelled whole)."""
    if permissive(manifest.licence) or accept_licence in (m.spdx_id(manifest.licence), manifest.licence):
        return
    raise LicenceNotAccepted(
        f"the weights' licence is {manifest.licence!r}, not a known permissive one; read it, then install with "
        f"--accept-licence {m.spdx_id(manifest.licence)}")


def install(manifest_path: Path, state_dir: Path, source: Path | None = None, accept_licence: str | None = None) -> Installed:
    """Check and copy a model; raises ManifestError (bad manifest or sha256) or InstallError."""
    manifest_path = Path(manifest_path)
    manifest = m.load(manifest_path)
    source = Path(source) if source is not None else manifest_path.parent / manifest.file
    if not source.is_file():
        hint = f"`edge models fetch {manifest_path}` downloads it from {manifest.url}" if manifest.url else "give it with --from FILE"
        raise InstallError(f"no model file at {source}: {hint}")
    m.verify_file(manifest, source, str(manifest_path))
    check_licence(manifest, accept_licence)
    group = service_group()
    target = models_dir(state_dir) / manifest.name
    _shared_dir(models_dir(state_dir), group)
    _shared_dir(target, group)
    model_path, manifest_copy = target / manifest.file, target / MANIFEST_NAME
    _atomic_copy(source, model_path, group)
    m.verify_file(manifest, model_path, str(manifest_path))  # what landed on disk is what was checked
    head = getattr(manifest, "head", None)
    if head is not None:  # a trained crop head (edge vision train) travels with its model, checked the same way
        head_source = manifest_path.parent / head.file
        if not head_source.is_file() or m.sha256_of(head_source) != head.sha256:
            raise InstallError(f"the crop head {head_source} is missing or not the one its manifest names")
        _atomic_copy(head_source, target / head.file, group)
    _atomic_copy(manifest_path, manifest_copy, group)
    return Installed(manifest.name, manifest_copy, model_path, manifest.licence)


Progress = Callable[[int, int | None], None]


def fetch(manifest_path: Path, state_dir: Path, accept_licence: str | None = None, progress: Progress | None = None) -> Installed:
    """Download the manifest's `url`, check its size and sha256, then install it; raises ManifestError
    (bad manifest, wrong sha256: the download is deleted) or InstallError (no url, licence, download)."""
    manifest_path = Path(manifest_path)
    manifest = m.load(manifest_path)
    if manifest.url is None:
        raise InstallError(f"{manifest_path} names no url: bring the file and install it with --from FILE")
    check_licence(manifest, accept_licence)  # before a byte is downloaded
    downloads = models_dir(state_dir) / DOWNLOADS
    downloads.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = downloads / f"{manifest.name}-{manifest.sha256[:16]}.part"  # another sha256 never resumes this one
    asyncio.run(_download(manifest.url, part, manifest.size, progress or (lambda done, total: None)))
    got = part.stat().st_size
    if manifest.size is not None and got != manifest.size:
        raise DownloadError(f"{manifest.url} gave {got} bytes, the manifest says {manifest.size}; run the same command to resume")
    try:
        m.verify_file(manifest, part, str(manifest_path))
    except m.ManifestError:
        part.unlink(missing_ok=True)  # wrong bytes: never resumed, never installed
        raise
    done = install(manifest_path, state_dir, part, accept_licence)
    part.unlink(missing_ok=True)
    return done


async def _download(url: str, part: Path, size: int | None, progress: Progress) -> None:
    """Into `part`, resuming what is there with a Range request; a server that ignores it starts over."""
    import aiohttp  # the gateway's HTTP library (its status server); only `models fetch` needs the client

    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is not None and have == size:
        return  # whole already: the sha256 check decides
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, headers={"Range": f"bytes={have}-"} if have else {}) as response:
                if response.status == 416 and have:
                    return  # nothing after what we have: the sha256 check decides
                if response.status == 200:
                    have = 0  # the whole file again
                elif response.status != 206 or not have:
                    raise DownloadError(f"{url}: HTTP {response.status} {response.reason}")
                total = have + response.content_length if response.content_length is not None else size
                if size is not None and total is not None and total != size:
                    raise DownloadError(f"{url} offers {total} bytes, the manifest says {size}: not the manifest's file")
                with open(part, "ab" if have else "wb") as out:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        out.write(chunk)
                        have += len(chunk)
                        if size is not None and have > size:
                            raise DownloadError(f"{url} sent more than the manifest's {size} bytes")
                        progress(have, total)
                    out.flush()
                    os.fsync(out.fileno())
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"{url}: the download stopped at {kept} bytes ({error.__class__.__name__}: {error}); "
                            "run the same command to resume") from None


def progress_line(name: str, stream=sys.stderr) -> Progress:
    """A progress line on a terminal (rewritten in place), nothing elsewhere but the final count."""
    shown = {"last": -1}

    def show(done: int, total: int | None) -> None:
        percent = int(done * 100 / total) if total else None
        if percent == shown["last"] and (total is None or done < total):
            return
        shown["last"] = percent if percent is not None else -1
        text = f"{name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB ({percent}%)" if total else f"{name}: {done / 1e6:.1f} MB"
        if stream.isatty():
            stream.write("\r" + text + ("\n" if total and done >= total else ""))
            stream.flush()
        elif total and done >= total:
            print(text, file=stream)

    return show


def service_group() -> int | None:
    """The service's group id, when the group exists on this machine."""
    try:
        return grp.getgrnam(SERVICE_GROUP).gr_gid
    except KeyError:
        return None


def _shared_dir(path: Path, group: int | None) -> None:
    """A models directory the service can enter and read: 0750 (setgid, so new files keep the group)."""
    path.mkdir(parents=True, exist_ok=True)
    if group is None:
        return
    if path.stat().st_gid != group:
        _give_to_group(path, group)
    os.chmod(path, 0o2750)


def installed(state_dir: Path) -> list[Path]:
    """The manifest of every installed model."""
    return sorted(models_dir(state_dir).glob(f"*/{MANIFEST_NAME}"))


def _give_to_group(path: Path | int, group: int) -> None:
    try:
        os.chown(path, -1, group) if not isinstance(path, int) else os.fchown(path, -1, group)
    except PermissionError:
        raise InstallError(f"cannot give {path if not isinstance(path, int) else 'the model'} to group {SERVICE_GROUP}, "
                           f"so the service could not read it: install as root or as a member of {SERVICE_GROUP}") from None


def _atomic_copy(source: Path, target: Path, group: int | None = None) -> None:
    """Copy to a temporary name, 0640 (in `group`), synced, then renamed into place."""
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            if group is not None and os.fstat(out.fileno()).st_gid != group:
                _give_to_group(out.fileno(), group)
            os.fchmod(out.fileno(), 0o640)
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
