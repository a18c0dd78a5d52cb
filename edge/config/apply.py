"""A building's config from the fleet: checked, written beside the one before, applied, watched, rolled back.

A signed `config.apply` (edge/uplink/downlink.py) carries a version and the YAML text. The text is
checked exactly as `edge check-config` checks a file (it is written beside the daemon's config, so
relative paths mean what they mean there), and an invalid one changes nothing: every problem goes
back to the cloud. A valid one replaces the daemon's file atomically (the one it replaces is kept as
`building.yaml.previous`) and is applied by the `Reloader`, in place or by a restart.

A config can be valid and still break the building: a reader on a port that is not there, a device
at an address nobody answers. So each apply is watched (`building.yaml.watch`, a marker written
before the file is replaced): if `/healthz`'s verdict names problems the building did not have
before, at every look for the whole watch, or the daemon keeps falling over after the apply (`edge
run` counts its starts in the marker before it loads the config), the previous file is restored and
applied, and `config.rolled_back` says why. Healthy at the deadline: `config.kept`, the marker goes.

The files beside the config, and what `edge run` does with them before it loads the config, are
edge/config/files.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from enum import Enum
from pathlib import Path
from typing import Any, Awaitable, Callable

import structlog
from pydantic import BaseModel

from edge.config import yaml_source
from edge.runtime import pools
from edge.carryover import open_conditions
from edge.conditions import ActiveConditions, Severity
from edge.events import Event, Kind, Priority
from edge.uplink.kinds import UplinkKind
from edge.runtime.pools import Pool
from edge.config.settings import Secret
from edge.config.files import (
    JOURNAL_PROBLEMS,
    ConfigFiles,
    Watch,
    applied_version,
    check_text,
    digest_of,
    install,
    note_clean_stop,
    record_version,
    restore,
)
from edge.runtime.state_files import remove_durably, write_atomically

log = structlog.get_logger("edge.config.apply")

MAX_YAML_BYTES = yaml_source.MAX_BYTES  # what check-config reads at most; the downlink takes up to 4 MiB
WATCH_S = 120.0  # how long an apply is watched unless the push says otherwise
MIN_WATCH_S, MAX_WATCH_S = 3.0, 3600.0
GRACE_SHARE = 0.25  # the watch's first quarter: devices and readers come up, nothing is judged yet
CLEAN_STOP_NOTE_S = 0.5  # of the stop, to note in the marker that this run ended cleanly
MAX_PROBLEMS = 200  # lines answered (each a FILE:LINE:COL problem); the rest are counted
SECRET_NAMES = ("password", "passphrase", "token", "secret", "pin", "private_key")

Health = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
Answer = Callable[[bool, dict[str, Any]], Awaitable[None]]


def public_view(value: Any) -> Any:
    """The config as the cloud may see it: secrets as their references (a file's path, a variable's
    name), never a value; anything else named like a secret is withheld too."""
    if isinstance(value, Secret):
        return {"file": str(value.file)} if value.file is not None else {"env": value.env}
    if isinstance(value, BaseModel):
        shown = {}
        for name in type(value).model_fields:
            if name not in value.model_fields_set:
                continue
            item = getattr(value, name)
            plain = item is not None and not isinstance(item, BaseModel)  # a Secret is a model: its reference is shown
            shown[name] = "(withheld)" if plain and any(word in name.lower() for word in SECRET_NAMES) else public_view(item)
        return shown
    if isinstance(value, dict):
        return {str(k): public_view(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [public_view(v) for v in value]
    if isinstance(value, Enum):
        return public_view(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value) if not isinstance(value, (bytes, bytearray)) else "(withheld)"


class ConfigApplier:
    """The cloud's `config.apply` and `config.get`, and the watch after an apply (a supervised worker)."""

    def __init__(self, config_path: Path, journal: Any, reloader: Callable[[], Any], running: Callable[[], Any],
                 health: Callable[[], Health | None], digest: Callable[[], str],
                 linked: Callable[[], bool | None] = lambda: None) -> None:
        self.files = ConfigFiles(Path(config_path).absolute())
        self.journal = journal
        self.reloader = reloader  # the gateway's Reloader (None: this daemon cannot apply)
        self.running = running  # the BuildingConfig running now
        self.health = health  # /healthz's verdict, without the HTTP round trip (None: no status server)
        self.linked = linked  # is the uplink connected (None: no uplink)
        self.running_digest = digest  # of the file running now (the reloader keeps it)
        self.version = 0  # read by the first apply, and by `start` (the birth message says it)
        self._lock = asyncio.Lock()
        self._watch_changed = asyncio.Event()
        self.on_change: Callable[[], None] = lambda: None  # the uplink republishes its birth message

    @property
    def digest(self) -> str:
        return self.running_digest()

    async def start(self) -> None:
        self.version = await pools.call(Pool.FILES, applied_version, self.files)

    # --- config.apply ------------------------------------------------------------------------------

    async def apply(self, version: int, text: str, nonce: str, watch_s: float | None, answer: Answer) -> None:
        """Check, write and apply `text` as config `version`; `answer(ok, detail)` is called once, as soon as
        the outcome is known (before it is journaled: an apply that restarts the daemon stops it soon after)."""
        async with self._lock:
            await self._apply(version, text, nonce, WATCH_S if watch_s is None else watch_s, answer)

    async def _apply(self, version: int, text: str, nonce: str, watch_s: float, answer: Answer) -> None:
        files = self.files
        self.version = await pools.call(Pool.FILES, applied_version, files)
        if version <= self.version:
            await answer(True, {"version": version, "redelivery": True, "applied_version": self.version, "digest": self.digest})
            return
        size = len(text.encode())
        if size > MAX_YAML_BYTES:
            problems = [f"{files.config}:1:1: (file): {size} bytes; a building config is at most {MAX_YAML_BYTES}"]
        else:
            try:
                problems = await pools.call(Pool.FILES, check_text, files, text)
            except OSError as refused:
                await answer(False, _unwritable(version, files, refused, self.digest))
                return
        if problems:
            await asyncio.gather(answer(False, _refused(version, problems, self.digest)), self.journal.append(Event(
                kind=Kind.CONFIG_APPLY_REFUSED, priority=Priority.ACCESS, source="config", body={
                    "version": version, "nonce": nonce, "problems": problems[:JOURNAL_PROBLEMS], "count": len(problems)})))
            return
        reloader = self.reloader()
        if reloader is None:
            await pools.call(Pool.FILES, remove_durably, files.incoming)
            await answer(False, {"version": version, "ok": False, "error": "this gateway cannot reload its config", "digest": self.digest})
            return
        before = await self._look()
        current = await pools.call(Pool.FILES, Watch.read, files.watch)
        keep_previous = current is None  # during a watch, `.previous` is still the last good file
        watch = Watch(version=version, nonce=nonce, digest="", previous_digest=None, watch_s=watch_s,
                      deadline_at=time.time() + watch_s, before=before if current is None else current.before)
        try:
            previous, new, replaced = await pools.call(Pool.FILES, self._install, watch, keep_previous)
        except OSError as refused:  # nothing replaced yet, or the rename did not happen: the old file runs
            await pools.call(Pool.FILES, self._put_back, None, current)
            await answer(False, _unwritable(version, files, refused, self.digest))
            return
        self.version = version
        outcome = await reloader.reload(via="cloud", operator=f"fleet:{nonce}")
        if not outcome.ok:  # found only with the hardware in view: the file that runs goes back at once
            await pools.call(Pool.FILES, self._put_back, replaced, current)
            await answer(False, _refused(version, list(outcome.problems), self.digest) | {"rolled_back": True})
            await self._journal_rollback(watch, "reload_refused", list(outcome.problems) or ["the reload refused it"], self.digest)
            return
        # Answered and journaled at once: a restart begins a moment after the reload returns, and its stop
        # cancels this handler (an event once admitted is still written).
        await asyncio.gather(
            answer(True, {"version": version, "ok": True, "applied": list(outcome.applied), "restart": outcome.restart,
                          "digest": outcome.digest or new, "previous_digest": previous, "problems": [], "watch_s": watch_s}),
            self.journal.append(Event(kind=Kind.CONFIG_APPLIED, priority=Priority.ACCESS, source="config", body={
                "version": version, "nonce": nonce, "digest": outcome.digest or new, "previous_digest": previous,
                "applied": list(outcome.applied), "restart": outcome.restart, "watch_s": watch_s})))
        watch.restart = outcome.restart
        await pools.call(Pool.FILES, watch.write, files.watch)
        self._watch_changed.set()
        self.on_change()

    def _install(self, watch: Watch, keep_previous: bool) -> tuple[str | None, str, bytes | None]:
        """Blocking: the marker first (a crash in between is then still watched), then the file.
        (previous digest, new digest, the bytes replaced)."""
        files = self.files
        replaced = files.config.read_bytes() if files.config.exists() else None
        watch.digest = digest_of(files.incoming.read_bytes())
        if keep_previous and files.config.exists():
            watch.previous_digest = digest_of(files.config.read_bytes())
        elif files.previous.exists():
            watch.previous_digest = digest_of(files.previous.read_bytes())
        watch.write(files.watch)
        previous, new = install(files, keep_previous)
        record_version(files, watch.version, watch.nonce, new)
        return previous, new, replaced

    def _put_back(self, replaced: bytes | None, watch: Watch | None) -> None:
        """Blocking: undo `_install` (the file the daemon runs, and the watch that was running, if any)."""
        with contextlib.suppress(OSError):
            remove_durably(self.files.incoming)
        if replaced is not None:
            write_atomically(self.files.config, replaced)
        with contextlib.suppress(OSError):
            if watch is not None:
                watch.write(self.files.watch)
            else:
                remove_durably(self.files.watch)

    # --- the watch ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """The worker: journal a rollback `edge run` made, then watch each apply to its deadline. Its
        cancellation is the daemon's stop: the marker then says this run ended cleanly."""
        try:
            await self._run()
        except asyncio.CancelledError:
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(CLEAN_STOP_NOTE_S):
                    await asyncio.shield(pools.call(Pool.FILES, note_clean_stop, self.files))
            raise

    async def _run(self) -> None:
        await self.start()
        while True:
            self._watch_changed.clear()
            watch = await pools.call(Pool.FILES, Watch.read, self.files.watch)
            if watch is not None and watch.state == "rolled_back":
                why = "start_failed" if watch.reasons and watch.reasons[0].startswith("the config did not start") else "crash_loop"
                await self._journal_rollback(watch, why, watch.reasons, self.digest)
                await pools.call(Pool.FILES, remove_durably, self.files.watch)
                continue
            if watch is None:
                await self._watch_changed.wait()
                continue
            await self._watch(watch)

    async def _watch(self, watch: Watch) -> None:
        """Look at the building's health until the deadline: new problems at every look after the grace
        roll back; otherwise the apply is kept. A newer apply ends this watch and starts its own."""
        start = time.time()
        grace_until = watch.deadline_at - watch.watch_s * (1 - GRACE_SHARE)
        step = max(0.25, min(5.0, watch.watch_s / 20))
        looks, failing, last_new = 0, 0, []
        while True:
            now = time.time()
            if now >= watch.deadline_at:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(step, watch.deadline_at - now)):
                    await self._watch_changed.wait()
                    return  # a newer apply (or a rollback) replaced this watch
            if time.time() < grace_until:
                continue
            new = [p for p in await self._look() if p not in watch.before]
            looks += 1
            if new:
                failing += 1
                last_new = new
        if looks and failing == looks:
            await self._roll_back(watch, last_new, "health", reload=True)
            return
        await pools.call(Pool.FILES, remove_durably, self.files.watch)
        await self.journal.append(Event(kind=Kind.CONFIG_KEPT, priority=Priority.ACCESS, source="config", body={
            "version": watch.version, "nonce": watch.nonce, "digest": watch.digest, "watched_s": round(time.time() - start, 1),
            "looks": looks, "problems": last_new if failing else []}))
        log.info("config kept after its watch", version=watch.version, digest=watch.digest)

    async def _look(self) -> list[str]:
        """What is wrong with the building now, one line each: /healthz's problems (without the status
        server, the fault conditions the journal holds open: a reader, a device, a camera that cannot be
        watched), and the uplink when it is not connected (a config that cuts the building off the
        fleet could never be fixed from it)."""
        health = self.health()
        if health is not None:
            problems = [f"/healthz: {problem}" for problem in (await health())[1].get("problems", [])]
        else:
            active = await pools.call(Pool.READS, open_conditions, self.journal.path, ActiveConditions())
            problems = [f"{c.source}: {c.text}" for c in active if c.severity == Severity.FAULT and c.kind != UplinkKind.UPLINK_DOWN]
        if self.linked() is False:
            problems.append("the uplink is not connected to the cloud")
        return problems

    async def _roll_back(self, watch: Watch, reasons: list[str], why: str, reload: bool) -> None:
        """The previous file back, journaled with why, then applied (a reload; or a restart if it needs one)."""
        if watch.previous_digest is None or not await pools.call(Pool.FILES, self.files.previous.exists):
            log.error("config cannot be rolled back: no previous file", version=watch.version, reasons=reasons)
            await pools.call(Pool.FILES, remove_durably, self.files.watch)
            await self._journal_rollback(watch, why, reasons + ["no previous file to restore"], None)
            return
        restored = await pools.call(Pool.FILES, restore, self.files)
        await pools.call(Pool.FILES, remove_durably, self.files.watch)
        await self._journal_rollback(watch, why, reasons, restored)
        self.on_change()
        reloader = self.reloader()
        if reload and reloader is not None:
            outcome = await reloader.reload(via="rollback", operator=f"rollback:{watch.version}")
            if not outcome.ok:
                log.error("the restored config did not reload", problems=outcome.problems)

    async def _journal_rollback(self, watch: Watch, why: str, reasons: list[str], restored: str | None) -> None:
        log.error("config rolled back", version=watch.version, why=why, reasons=reasons)
        await self.journal.append(Event(kind=Kind.CONFIG_ROLLED_BACK, priority=Priority.ACCESS, source="config", body={
            "version": watch.version, "nonce": watch.nonce, "digest": watch.digest, "restored": restored, "why": why,
            "reasons": reasons[:JOURNAL_PROBLEMS], "starts": watch.starts}))

    # --- config.get --------------------------------------------------------------------------------

    async def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The running config with secrets as references, its digest and the fleet's last version."""
        self.version = await pools.call(Pool.FILES, applied_version, self.files)
        watch = await pools.call(Pool.FILES, Watch.read, self.files.watch)
        return {"digest": self.digest, "version": self.version, "path": str(self.files.config),
                "watching": None if watch is None else {"version": watch.version, "deadline_at": watch.deadline_at},
                "config": public_view(self.running())}


def _unwritable(version: int, files: ConfigFiles, error: OSError, digest: str) -> dict[str, Any]:
    return {"version": version, "ok": False, "problems": [], "applied": [], "restart": False, "digest": digest,
            "error": f"{files.config.parent} refuses writes ({error.strerror or error}): the daemon needs write access to its "
                     "config directory (systemd: ReadWritePaths=); nothing changed"}


def _refused(version: int, problems: list[str], digest: str) -> dict[str, Any]:
    shown = problems[:MAX_PROBLEMS]
    more = len(problems) - len(shown)
    return {"version": version, "ok": False, "problems": shown + ([f"... and {more} more"] if more else []),
            "applied": [], "restart": False, "digest": digest}

