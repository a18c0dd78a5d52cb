"""A real small filesystem for the journal's fault tests: the kernel's own ENOSPC and EROFS.

A tmpfs of a few hundred KiB is mounted in the test's temp dir (root only: the tests that
use it are skipped otherwise, and say so). `fill()` takes the last free byte with a
ballast file, `free()` gives it back; `read_only()`/`writable()` remount it.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.ballast = mount / "ballast"

    def fill(self) -> None:
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"\1" * 4096)
        except OSError:
            pass  # ENOSPC: the disk is full
        try:
            while True:
                os.write(fd, b"\1")
        except OSError:
            pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.mount)], check=True)

    def writable(self) -> None:
        subprocess.run(["mount", "-o", "remount,rw", str(self.mount)], check=True)


def mount_small_disk(where: Path, size: str = "768k"):
    """Mount a tmpfs of `size` at `where` (a generator for a fixture: yields a SmallDisk, unmounts after)."""
    if os.geteuid() != 0:
        pytest.skip("a real full or read-only filesystem needs a tmpfs mount, which needs root")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], check=True)
    try:
        yield SmallDisk(where)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


class FailingCard:
    """An ext4 disk mounted with errors=remount-ro, as a gateway's SD card is: `fail()` makes the
    kernel record an error and turn it read-only under whatever has files open (for good, until
    unmounted), the way a failing card does; a tmpfs refuses that remount while a file is open."""

    def __init__(self, mount: Path, device: str) -> None:
        self.mount = mount
        self.device = device

    def fail(self) -> None:
        Path(f"/sys/fs/ext4/{Path(self.device).name}/trigger_fs_error").write_text("1")

    @property
    def read_only(self) -> bool:
        """The kernel refuses a new file (the mount's options still say rw after an error)."""
        try:
            (self.mount / ".probe").touch()
        except OSError as refused:
            return refused.errno == errno.EROFS
        (self.mount / ".probe").unlink()
        return False


def mount_failing_card(where: Path, size: str = "32M"):
    """Mount a loop-backed ext4 of `size` at `where` with errors=remount-ro (a generator for a fixture)."""
    if os.geteuid() != 0:
        pytest.skip("a disk that turns read-only under the daemon needs a loop mount, which needs root")
    image = where.with_name(where.name + ".img")
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    where.mkdir()
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(where)], check=True)
    try:
        device = subprocess.run(["findmnt", "-no", "SOURCE", str(where)], capture_output=True, text=True, check=True).stdout.strip()
        yield FailingCard(where, device)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        image.unlink(missing_ok=True)


class Ext4Disk(SmallDisk):
    """A loop-mounted ext4 with errors=remount-ro: `fail()` makes the kernel turn it read-only under
    open files, as a failing SD card does (a plain `remount,ro` is refused while files are open
    for writing); `repair()` unmounts, checks and mounts it writable again."""

    def __init__(self, mount: Path, image: Path) -> None:
        super().__init__(mount)
        self.image = image

    def device(self) -> str:
        found = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(self.mount)], capture_output=True, text=True, check=True)
        return found.stdout.strip()

    def fail(self) -> None:
        """An ext4 error: with errors=remount-ro the kernel refuses every write from now on (EROFS)."""
        Path(f"/sys/fs/ext4/{Path(self.device()).name}/trigger_fs_error").write_text("1")

    def repair(self) -> None:
        """Unmount (lazily: a process may still hold files), fsck, mount again read-write."""
        subprocess.run(["umount", "-l", str(self.mount)], check=True)
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True, check=False)
        subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mount)], check=True)


def mount_ext4_disk(where: Path, size_mb: int = 16):
    """A loop-mounted ext4 of `size_mb` at `where` with errors=remount-ro (a generator for a fixture)."""
    if os.geteuid() != 0:
        pytest.skip("a loop-mounted ext4 needs root")
    image = where.with_name(where.name + ".img")
    with open(image, "wb") as file:
        file.truncate(size_mb * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    where.mkdir()
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(where)], check=True)
    try:
        yield Ext4Disk(where, image)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
