"""Telling systemd how we are: READY, WATCHDOG pings, RELOADING, STOPPING.

The watchdog ping is sent from a task on the main loop, so a loop that hangs (a blocking
call where none belongs) stops the pings and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import os

import sdnotify


class Systemd:
    """sd_notify messages; silently nothing when not started by systemd."""

    def __init__(self) -> None:
        self._notifier = sdnotify.SystemdNotifier() if os.environ.get("NOTIFY_SOCKET") else None

    def send(self, state: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(state)

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def reloading(self) -> None:
        """The daemon restarts itself under its own PID (a reload that needs it); READY=1 follows."""
        self.send("RELOADING=1\nSTATUS=restarting for a new config")

    @staticmethod
    def watchdog_interval_s() -> float | None:
        """Half of WatchdogSec, as systemd recommends; None when no watchdog is set."""
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec or (os.environ.get("WATCHDOG_PID") not in (None, str(os.getpid()))):
            return None
        return int(usec) / 2_000_000

    async def keep_alive(self, interval_s: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval_s)
