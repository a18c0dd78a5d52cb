"""`/healthz`: is the gateway doing its job? 200 only when the loop is alive, the journal
writable and every critical device online; otherwise 503 and a body saying what is not.

The verdict is a pure function of what the server probed (`Probe`), so each rule is tested
without a daemon. Every configured Modbus device and card reader is critical: a door whose
reader is dead, or a circuit whose monitor is silent, is a building that is not watched. So is
an elevator camera whose guard runs and whose stream is down: no e-bike would be seen. So is a
pool of threads whose work waits past its patience (edge/runtime/pools.py): a PIN check or the fire
latch that cannot get a thread is a door or a release that does not happen in time.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOP_LAG_LIMIT_S = 2.0  # a loop this late cannot open a door in time
COMMIT_SILENCE_LIMIT_S = 150.0  # the heartbeat commits every 60 s: two missed beats and some slack
MIN_FREE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Disk:
    """What the reader thread found of the journal's directory (stat and statvfs may block)."""

    journal_bytes: int
    free_bytes: int
    writable: bool


def probe_disk(journal: Path) -> Disk:
    """Blocking: run in the status reader thread."""
    size = sum(os.stat(part).st_size for part in (journal, Path(f"{journal}-wal")) if part.exists())
    directory = journal.parent
    return Disk(size, shutil.disk_usage(directory).free, os.access(directory, os.W_OK))


@dataclass(frozen=True, slots=True)
class Probe:
    loop_lag_s: float
    commit_silence_s: float  # since the journal last committed (or since it opened)
    disk: Disk | None  # None: the disk probe did not answer in time
    devices: dict[str, bool] = field(default_factory=dict)  # Modbus device -> online
    readers: dict[str, bool] = field(default_factory=dict)  # card reader -> online
    cameras: dict[str, bool] = field(default_factory=dict)  # camera whose guard runs -> stream up
    starved: list[str] = field(default_factory=list)  # executors whose work waits past its patience (edge.runtime.pools)
    journal_fault: dict[str, Any] | None = None  # the journal's own word that it is degraded (Journal.fault)
    unidentified: dict[str, str] = field(default_factory=dict)  # device -> why its identify read picked no map


def verdict(probe: Probe) -> tuple[bool, dict[str, Any]]:
    """(healthy, body): the body names every problem, one line each, and the checks behind them."""
    problems: list[str] = []
    if probe.loop_lag_s > LOOP_LAG_LIMIT_S:
        problems.append(f"event loop late by {probe.loop_lag_s:.1f} s")
    if probe.journal_fault is not None:  # at once, not after the commit-silence rule's minutes
        problems.append(f"journal unavailable ({probe.journal_fault.get('fault')}): "
                        f"{probe.journal_fault.get('held', 0)} events held in memory")
    if probe.commit_silence_s > COMMIT_SILENCE_LIMIT_S:
        problems.append(f"journal has not committed for {probe.commit_silence_s:.0f} s")
    if probe.disk is None:
        problems.append("journal disk did not answer a stat in time")
    else:
        if not probe.disk.writable:
            problems.append("journal directory is not writable")
        if probe.disk.free_bytes < MIN_FREE_BYTES:
            problems.append(f"journal disk has only {probe.disk.free_bytes // 1024} KiB free")
    problems += [f"device {name} offline" for name, online in sorted(probe.devices.items()) if not online]
    problems += [f"device {name} unidentified (polled by its base map only): {why}" for name, why in sorted(probe.unidentified.items())]
    problems += [f"reader {name} offline" for name, online in sorted(probe.readers.items()) if not online]
    problems += [f"camera {name} stream down" for name, up in sorted(probe.cameras.items()) if not up]
    problems += probe.starved
    body = {
        "ok": not problems,
        "problems": problems,
        "loop_lag_s": round(probe.loop_lag_s, 4),
        "journal": {
            "commit_silence_s": round(probe.commit_silence_s, 1),
            "free_bytes": None if probe.disk is None else probe.disk.free_bytes,
            "writable": None if probe.disk is None else probe.disk.writable,
            "degraded": probe.journal_fault,
        },
        "devices": probe.devices,
        "unidentified": probe.unidentified,
        "readers": probe.readers,
        "cameras": probe.cameras,
    }
    return not problems, body
