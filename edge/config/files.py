"""The files kept beside a building's config for the fleet's applies, and what `edge run` does with
them before it loads the config.

Beside `building.yaml`: `.previous` (the file the last apply replaced: what a rollback restores),
`.incoming` (a pushed text while it is checked), `.failed` (what a rollback took away), `.applied`
(the last version applied) and `.watch` (the marker of an apply under watch). They live beside the
config rather than in the state dir: `edge run` must read the marker before it has a config to name a
state dir, and a new config may name another one. Every function here blocks (files pool, or `edge
run` before the loop starts).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import structlog

from edge.config import building as building_config
from edge.runtime.state_files import remove_durably, sync_directory, write_atomically

log = structlog.get_logger("edge.config.files")

CRASH_STARTS = 2  # starts during a watch that no clean stop came before: a crash loop
JOURNAL_PROBLEMS = 20  # lines kept in the journal's record of a refusal


def digest_of(data: bytes) -> str:
    """The config's short hash, as the birth message and `gateway.started` name it."""
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ConfigFiles:
    """The daemon's config file and the files kept beside it."""

    config: Path

    def beside(self, suffix: str) -> Path:
        return self.config.with_name(self.config.name + suffix)

    @property
    def previous(self) -> Path:
        """The file the last apply replaced: what a rollback restores."""
        return self.beside(".previous")

    @property
    def incoming(self) -> Path:
        """A pushed text while it is checked (never the file the daemon runs)."""
        return self.beside(".incoming")

    @property
    def failed(self) -> Path:
        """The file a rollback took away, kept for a technician to read."""
        return self.beside(".failed")

    @property
    def applied(self) -> Path:
        """The last version the fleet applied (JSON): an older or equal one is a redelivery."""
        return self.beside(".applied")

    @property
    def watch(self) -> Path:
        """The marker of an apply being watched (JSON `Watch`)."""
        return self.beside(".watch")


@dataclass(slots=True)
class Watch:
    """An apply under watch, as the marker file holds it."""

    version: int
    nonce: str
    digest: str  # the file applied
    previous_digest: str | None  # the file it replaced (None: there was none to restore)
    watch_s: float
    deadline_at: float  # Unix time the watch ends
    restart: bool | None = None  # None until the reload said; True: one start is planned
    starts: int = 0  # `edge run` starts since the apply
    clean_stops: int = 0  # runs that ended by a stop (a restart the apply planned, systemctl restart), not a crash
    before: list[str] = field(default_factory=list)  # /healthz's problems before the apply (not the new file's fault)
    state: str = "watching"  # "rolled_back": `edge run` restored the previous file; the gateway journals it
    reasons: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> "Watch | None":
        try:
            raw = json.loads(path.read_text())
            return cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as damaged:  # a torn marker cannot be trusted: no watch
            log.error("config watch marker unreadable; ignored", path=str(path), error=str(damaged))
            return None

    def write(self, path: Path) -> None:
        write_atomically(path, json.dumps(asdict(self), separators=(",", ":")).encode())

    @property
    def crash_loop(self) -> bool:
        return self.starts - self.clean_stops >= CRASH_STARTS


def applied_version(files: ConfigFiles) -> int:
    """Blocking: the last version applied from the fleet (0: none yet)."""
    try:
        version = json.loads(files.applied.read_text()).get("version", 0)
    except (FileNotFoundError, ValueError, AttributeError):
        return 0
    return version if isinstance(version, int) else 0


def check_text(files: ConfigFiles, text: str) -> list[str]:
    """Blocking: every problem `edge check-config` would print for `text` placed at the daemon's config,
    one FILE:LINE:COL line each (empty: valid). The text waits in `.incoming` beside the config."""
    write_atomically(files.incoming, text.encode())
    try:
        building_config.load(files.incoming)
    except building_config.ConfigError as error:
        remove_durably(files.incoming)
        named = str(files.incoming)
        return [str(problem).replace(named, str(files.config), 1) for problem in error.problems]
    return []


def install(files: ConfigFiles, keep_previous: bool) -> tuple[str | None, str]:
    """Blocking: the checked `.incoming` becomes the daemon's config (atomically); the file it replaces
    is kept as `.previous` unless a watch still holds the last good one there. (previous, new) digests."""
    if keep_previous and files.config.exists():
        write_atomically(files.previous, files.config.read_bytes())
    previous = digest_of(files.previous.read_bytes()) if files.previous.exists() else None
    new = digest_of(files.incoming.read_bytes())
    os.replace(files.incoming, files.config)
    sync_directory(files.config.parent)
    return previous, new


def restore(files: ConfigFiles) -> str:
    """Blocking: the previous file back in place (the one taken away kept as `.failed`); its digest."""
    if files.config.exists():
        write_atomically(files.failed, files.config.read_bytes())
    data = files.previous.read_bytes()
    write_atomically(files.config, data)
    return digest_of(data)


def record_version(files: ConfigFiles, version: int, nonce: str, digest: str) -> None:
    write_atomically(files.applied, json.dumps({"version": version, "nonce": nonce, "digest": digest,
                                                "at": round(time.time(), 3)}).encode())


def at_start(config: Path, now: float | None = None) -> str | None:
    """Blocking, `edge run` before it loads the config: count this start against an apply under watch;
    a crash loop restores the previous file (the gateway journals why once its journal is open).
    Returns a line for the log when it rolled back."""
    files = ConfigFiles(config)
    try:
        watch = Watch.read(files.watch)
        if watch is None or watch.state != "watching":
            return None
        watch.starts += 1
        now = time.time() if now is None else now
        if watch.crash_loop:
            crashes = watch.starts - watch.clean_stops
            return _roll_back_at_start(files, watch, [f"the daemon fell over {crashes} times within the watch of version "
                                                      f"{watch.version} (a crash loop after the apply)"])[0]
        if now > watch.deadline_at:  # stopped through the deadline (not a crash): watch this run afresh
            watch.deadline_at = now + watch.watch_s
        watch.write(files.watch)
    except OSError as error:  # a refusing disk must not keep the daemon from starting
        return f"{config}: the config's watch could not be kept ({error}); started without it"
    return None


def failed_start(config: Path, problems: list[str]) -> tuple[str | None, bool]:
    """Blocking, `edge run` when the config under watch does not start (a problem found only with the
    hardware in view): the previous file back at once, rather than an exit systemd will not restart.
    (a line for the log, whether the previous file is back)."""
    files = ConfigFiles(config)
    try:
        watch = Watch.read(files.watch)
        if watch is None or watch.state != "watching":
            return None, False
        return _roll_back_at_start(files, watch, [f"the config did not start: {line}" for line in problems[:JOURNAL_PROBLEMS]]
                                   or ["the config did not start"])
    except OSError as error:
        return f"{config}: the previous config could not be restored ({error})", False


def _roll_back_at_start(files: ConfigFiles, watch: Watch, reasons: list[str]) -> tuple[str, bool]:
    """Blocking: the previous file back, the marker saying so for the gateway to journal: (log line, restored)."""
    if watch.previous_digest is None or not files.previous.exists():
        remove_durably(files.watch)
        return f"{files.config}: config version {watch.version} cannot be rolled back (no previous file): {reasons[0]}", False
    watch.state, watch.reasons = "rolled_back", reasons
    restored = restore(files)
    watch.write(files.watch)  # the gateway journals it once its journal is open
    return f"{files.config}: config version {watch.version} rolled back to {restored}: {reasons[0]}", True


def note_clean_stop(files: ConfigFiles) -> None:
    """Blocking: this run ends by a stop, not a crash (the next start is then not counted as one)."""
    watch = Watch.read(files.watch)
    if watch is not None and watch.state == "watching":
        watch.clean_stops += 1
        watch.write(files.watch)
