"""SIGKILL a journal writer at random moments: nothing acknowledged is lost or repeated."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from edge.journal import EventQuery, read_events

WRITER = Path(__file__).with_name("journal_writer.py")
KILLS = 20


def _run_and_kill(path: Path, delay_s: float) -> list[tuple[int, str]]:
    """Start a writer, SIGKILL it after delay_s, return the (seq, id) pairs it acknowledged."""
    process = subprocess.Popen([sys.executable, str(WRITER), str(path)], stdout=subprocess.PIPE, text=True)
    acknowledged: list[tuple[int, str]] = []

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            if line.endswith("\n"):
                seq, event_id = line.split()
                acknowledged.append((int(seq), event_id))

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(delay_s)
    process.send_signal(signal.SIGKILL)
    process.wait()
    reader.join()
    return acknowledged


def test_sigkill_at_random_moments_loses_and_repeats_nothing(tmp_path: Path):
    path = tmp_path / "journal.db"
    rng = random.Random(20261124)
    acknowledged: dict[str, int] = {}
    sessions_with_acks = 0
    for _ in range(KILLS):
        acked = _run_and_kill(path, rng.uniform(0.3, 1.2))
        sessions_with_acks += bool(acked)
        for seq, event_id in acked:
            assert event_id not in acknowledged
            acknowledged[event_id] = seq
    assert sessions_with_acks >= KILLS // 2, "the writer must get going before most kills"

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = read_events(path, EventQuery(limit=None))
    seqs = [e.seq for e in stored]
    assert seqs == sorted(set(seqs)), "seq is unique and increasing"
    ids = [e.id for e in stored]
    assert len(ids) == len(set(ids))
    by_id = {e.id: e.seq for e in stored}
    missing = [i for i in acknowledged if i not in by_id]
    assert not missing, f"{len(missing)} acknowledged events were lost"
    assert all(by_id[i] == seq for i, seq in acknowledged.items()), "an event's seq never changes"
    assert len(set(acknowledged.values())) == len(acknowledged), "no seq was handed out twice across restarts"
