"""`edge run` as a subprocess, driven from outside as systemd would drive it.

Readiness is READY=1 on a notify socket of our own (the daemon's real systemd path), not a
sleep; a stop is SIGTERM with a deadline; a crash is SIGKILL. The log of every start goes
to one file in the scenario's directory, so a failing run can be read afterwards (--keep).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_WITHIN_S = 30.0
STOP_WITHIN_S = 10.0


class DaemonFailed(RuntimeError):
    """The daemon did not start, or exited when it should be running."""


class Daemon:
    """One building's `edge run`, startable again after a kill."""

    def __init__(self, config_path: Path, workdir: Path) -> None:
        self.config_path = config_path
        self.log_path = workdir / "daemon.log"
        self._notify_path = workdir / "notify.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._notify: socket.socket | None = None
        self.starts = 0
        self.env: dict[str, str] = {}  # added to the daemon's environment (a rig camera's capture options)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start `edge run` and return once it said READY=1; raises DaemonFailed with its log tail otherwise."""
        if self._notify is None:
            self._notify_path.unlink(missing_ok=True)
            self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind(str(self._notify_path))
        env = dict(os.environ, **self.env, NOTIFY_SOCKET=str(self._notify_path))
        env.pop("WATCHDOG_USEC", None)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "run", "--config", str(self.config_path)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DaemonFailed(f"edge run exited with {self._process.returncode} before READY=1:\n{self.log_tail()}")
            self._notify.settimeout(0.2)
            try:
                message = self._notify.recv(4096).decode(errors="replace")
            except TimeoutError:
                continue
            if "READY=1" in message:
                return
        raise DaemonFailed(f"edge run did not say READY=1 within {READY_WITHIN_S:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would: no flush, no goodbye."""
        if self.alive():
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(STOP_WITHIN_S)

    def stop(self) -> int | None:
        """SIGTERM and wait, as systemd stops it; SIGKILL if it does not stop in time. Returns its exit code."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_WITHIN_S)
        return self._process.returncode

    def close(self) -> None:
        self.stop()
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def rss_mb(self) -> float:
        """Resident memory of the running daemon, from /proc."""
        if not self.alive():
            raise DaemonFailed("the daemon is not running")
        with open(f"/proc/{self._process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise DaemonFailed("no VmRSS in /proc status")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
