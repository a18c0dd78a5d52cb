"""Log lines: JSON to stdout for journald, readable on a terminal.

Logs say what the gateway did and carry event ids, never people: no card numbers, no
names. The journal, not the log, is the record; a log line about an event names its id
so the two can be joined.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from edge.config.building import LogFormat


def configure(format: LogFormat = LogFormat.AUTO, level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog once per process (the CLI calls this before anything logs)."""
    stream = stream or sys.stdout
    console = format is LogFormat.CONSOLE or (format is LogFormat.AUTO and stream.isatty())
    renderer = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
