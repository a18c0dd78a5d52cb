"""A pair of linked pseudo-terminals from socat: the stand-in for a serial cable in tests.

Bytes written to one end come out of the other at once, whatever baud rate either side sets;
`edge.hil.line.SerialLine` adds wire timing and noise on top. Killing socat (`unplug()`) is how tests
pull the cable: the open ends then fail with EIO, like an unplugged USB adapter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

START_TIMEOUT_S = 5.0


@dataclass
class PtyPair:
    """The two tty paths of one socat pair, and the process that links them."""

    a: str
    b: str
    process: subprocess.Popen[bytes]

    def __iter__(self) -> Iterator[str]:
        return iter((self.a, self.b))

    def unplug(self) -> None:
        """Stop socat: both ends go dead, as a pulled cable or adapter would."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def pty_pair() -> Iterator[PtyPair]:
    """Start `socat pty,raw,echo=0 pty,raw,echo=0` and yield its two tty paths once both exist."""
    socat = shutil.which("socat")
    if socat is None:
        raise RuntimeError("socat is not installed (Debian package socat)")
    with tempfile.TemporaryDirectory(prefix="pty-pair-") as tmp:
        a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        log_path = os.path.join(tmp, "socat.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        pair = PtyPair(a, b, process)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not (os.path.exists(a) and os.path.exists(b)):
                if process.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, "rb") as log_file:
                        detail = log_file.read().decode(errors="replace").strip()
                    raise RuntimeError(f"socat did not create the pty pair: {detail}")
                time.sleep(0.01)
            yield pair
        finally:
            pair.unplug()
