"""A journal writer for the crash test: appends forever, prints `seq id` once each event is durable.

Run as a subprocess and SIGKILLed at random moments; a line on stdout is a promise that
the event survives.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edge.events import Event, Priority
from edge.journal import Journal


async def produce(journal: Journal, producer: int) -> None:
    n = 0
    while True:
        event = Event(kind="telemetry.crash_test", priority=Priority(n % 4), source=f"producer-{producer}", body={"n": n, "pad": "p" * 150})
        seq = await journal.append(event)
        sys.stdout.write(f"{seq} {event.id}\n")
        sys.stdout.flush()
        n += 1


async def main(path: Path) -> None:
    journal = await Journal.open(path)
    await asyncio.gather(*(produce(journal, p) for p in range(8)))


if __name__ == "__main__":
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout carries only promises
    asyncio.run(main(Path(sys.argv[1])))
