"""Judging a scenario's expectations from outside, as a rig engineer would.

Events come from the daemon's journal file (read-only, as `edge events` reads it), points from the
devices themselves, SMS from the modem simulator, the cloud from the reference cloud's own store.
Each waits until its deadline, counted from when the stimulus was complete, and then judges what
it found against that deadline; a miss says what happened instead (`Player.nearest`).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edge.events import StoredEvent
from edge.hil import scenario as sc
from edge.hil.report import StepResult
from edge.hil.waiting import by_deadline

if TYPE_CHECKING:
    from edge.hil.runner import Player

POLL_S = 0.05
FILL_GAPS_EVERY_S = 1.0
NEAREST = 8


async def expect(player: Player, step: Any, result: StepResult) -> None:
    if isinstance(step, sc.ExpectEvent):
        await _expect_event(player, step, result)
    elif isinstance(step, sc.ExpectPoint):
        await _expect_point(player, step, result)
    elif isinstance(step, sc.ExpectNone):
        await _expect_none(player, step, result)
    elif isinstance(step, sc.ExpectCloud):
        await _expect_cloud(player, step, result)
    elif isinstance(step, sc.ExpectOpen):
        await _expect_open(player, step, result)
    elif isinstance(step, sc.ExpectSms):
        await _expect_sms(player, step.expect_sms, result)
    elif isinstance(step, sc.ExpectNoSms):
        await _expect_no_sms(player, step, result)
    elif isinstance(step, sc.ExpectRss):
        rss = await asyncio.to_thread(player.daemon.rss_mb)
        result.passed, result.detail = rss < step.expect_rss_mb_below, f"RSS {rss:.1f} MB"
        result.expected = f"the daemon's RSS below {step.expect_rss_mb_below} MB"


def _deadline(player: Player, within_ms: int) -> float:
    return player.given_mono + within_ms / 1000


def _judge(result: StepResult, after_ms: float, within_ms: int, found: str) -> None:
    """What an expectation found, `after_ms` after the stimulus was done, against its deadline.

    Every expectation asks this of what it found, not only of its waiting: the steps before it
    may have used its time up (a window, a slower expectation), and a point or a port first
    looked at after the deadline says nothing about whether it was so in time.
    """
    result.measured_ms, result.detail = after_ms, found
    if after_ms > within_ms:
        result.passed = False
        result.detail = f"{found}, {after_ms:.0f} ms after the stimulus was done: past its {within_ms} ms deadline"


def _matches(event: StoredEvent, source: str | None, fields: dict[str, Any], has: Sequence[str] = ()) -> bool:
    return ((source is None or event.source == source) and all(event.body.get(k) == v for k, v in fields.items())
            and all(k in event.body for k in has))


def _wanted(kind: str, source: str | None, fields: dict[str, Any], has: Sequence[str] = ()) -> str:
    where = f" from {source}" if source else ""
    parts = [f"{k}={json.dumps(v)}" for k, v in fields.items()] + [f"a {k}" for k in has]
    return f"{kind}{where}" + (" with " + ", ".join(parts) if parts else "")


async def _expect_event(player: Player, step: sc.ExpectEvent, result: StepResult) -> None:
    wanted = _wanted(step.expect, step.source, step.fields, step.has)
    result.expected = f"{step.count} x {wanted} within {step.within_ms} ms" if step.count > 1 else f"{wanted} within {step.within_ms} ms"
    matching: list[StoredEvent] = []

    async def enough() -> bool:
        nonlocal matching
        matching = [e for e in await player.events(after_seq=player.mark_seq, kinds=(step.expect,))
                    if _matches(e, step.source, step.fields, step.has)]
        return len(matching) >= step.count

    if await by_deadline(enough, _deadline(player, step.within_ms), every_s=POLL_S):
        event = matching[step.count - 1]
        _judge(result, (event.wall_ns - player.given_ns) / 1e6, step.within_ms, f"seq {event.seq}")
        if not result.passed:
            result.nearest = [player.describe(e) for e in matching[:NEAREST]]
        return
    result.passed = False
    result.detail = f"{len(matching)} matching event(s) in {step.within_ms} ms"
    result.nearest = await player.nearest(step.expect)


async def _expect_point(player: Player, step: sc.ExpectPoint, result: StepResult) -> None:
    result.expected = f"{step.expect_point} = {json.dumps(step.equals)} within {step.within_ms} ms"
    seen: list[Any] = []

    async def equal() -> float | None:
        value = await player.rig.read_point(step.expect_point)
        read = time.monotonic()  # when the read is complete: a slow read (a rig's hook) is no excuse
        if not seen or seen[-1] != value:
            seen.append(value)
        return read if _same(value, step.equals) else None

    read = await by_deadline(equal, _deadline(player, step.within_ms), every_s=POLL_S)
    if read is not None:
        _judge(result, (read - player.given_mono) * 1000, step.within_ms, f"read {json.dumps(seen[-1])}")
        return
    result.passed = False
    result.detail = f"{step.expect_point} read {' then '.join(json.dumps(v) for v in seen[-5:])}"
    result.nearest = await player.nearest(None)


async def _expect_open(player: Player, step: sc.ExpectOpen, result: StepResult) -> None:
    result.expected = f"the daemon holds reader {step.expect_open}'s port open within {step.within_ms} ms"
    waiting: list[str] = []

    def opened() -> bool:
        nonlocal waiting
        waiting = [w for w in player.rig.not_listening(player.daemon.pid) if w.startswith(f"reader {step.expect_open} ")]
        return not waiting

    if await by_deadline(opened, _deadline(player, step.within_ms), every_s=POLL_S):
        _judge(result, (time.monotonic() - player.given_mono) * 1000, step.within_ms, "open")
        return
    result.passed, result.detail = False, waiting[0]
    result.nearest = await player.nearest(None)


async def _expect_none(player: Player, step: sc.ExpectNone, result: StepResult) -> None:
    result.expected = f"no {_wanted(step.expect_none, step.source, step.fields)} for {step.for_ms} ms"
    await asyncio.sleep(max(0.0, _deadline(player, step.for_ms) - time.monotonic()))
    if not player.daemon.alive():
        result.passed, result.detail = False, "the daemon was not running through the window, so its silence proves nothing"
        return
    found = [e for e in await player.events(after_seq=player.mark_seq, kinds=(step.expect_none,))
             if _matches(e, step.source, step.fields) and e.wall_ns <= player.given_ns + step.for_ms * 1_000_000]
    result.measured_ms = float(step.for_ms)
    if found:
        result.passed = False
        result.detail = f"{len(found)} such event(s), the first {(found[0].wall_ns - player.given_ns) / 1e6:.0f} ms after the stimulus was done"
        result.nearest = [player.describe(e) for e in found[:NEAREST]]
    else:
        result.detail = "none"


def _sms_since_mark(player: Player) -> list[Any]:
    return [m for m in list(player.modem.messages) if m.at >= player.mark_mono]


async def _expect_sms(player: Player, step: sc.Sms, result: StepResult) -> None:
    result.expected = f"an SMS to {step.to}" + (f" containing {step.contains!r}" if step.contains else "") + f" within {step.within_ms} ms"
    messages: list[Any] = []

    def sent() -> Any:
        nonlocal messages
        messages = _sms_since_mark(player)
        return next((m for m in messages if m.number == step.to and step.contains in m.text), None)

    found = await by_deadline(sent, _deadline(player, step.within_ms), every_s=POLL_S)
    if found is not None:
        _judge(result, (found.at - player.given_mono) * 1000, step.within_ms, f"{found.text[:80]!r}")
        return
    result.passed = False
    result.detail = f"the modem took {len(messages)} SMS since the stimulus"
    result.nearest = [f"SMS to {m.number}: {m.text[:120]!r}" for m in messages[:NEAREST]] + await player.nearest("notify.sms_sent")


async def _expect_no_sms(player: Player, step: sc.ExpectNoSms, result: StepResult) -> None:
    result.expected = f"no SMS for {step.for_ms} ms"
    await asyncio.sleep(max(0.0, _deadline(player, step.for_ms) - time.monotonic()))
    messages = [m for m in _sms_since_mark(player) if m.at <= player.given_mono + step.for_ms / 1000]
    result.measured_ms = float(step.for_ms)
    if messages:
        result.passed = False
        result.detail = f"{len(messages)} SMS, the first to {messages[0].number}"
        result.nearest = [f"SMS to {m.number}: {m.text[:120]!r}" for m in messages[:NEAREST]]
    else:
        result.detail = "none"


async def _expect_cloud(player: Player, step: sc.ExpectCloud, result: StepResult) -> None:
    building = player.config.building.id
    journal = await player.events()
    head = journal[-1].seq if journal else 0
    result.expected = f"the cloud holds the journal's {len(journal)} events through seq {head} exactly once, no gap, within {step.within_ms} ms"
    filled = time.monotonic()
    held: list[dict[str, Any]] = []

    async def exactly_once() -> bool:
        nonlocal held, filled
        held = [e for e in player.cloud.events(building) if e["seq"] <= head]
        if [e["id"] for e in held] == [e.id for e in journal]:
            return True
        if time.monotonic() - filled > FILL_GAPS_EVERY_S:
            filled = time.monotonic()
            try:
                await player.cloud.fill_gaps(building, head)
            except (TimeoutError, ConnectionError, AttributeError):
                pass  # the gateway or the broker is not back yet; try again
        return False

    if await by_deadline(exactly_once, _deadline(player, step.within_ms), every_s=POLL_S * 4):
        _judge(result, (time.monotonic() - player.given_mono) * 1000, step.within_ms,
                    f"{len(held)} events, {player.cloud.duplicates} duplicate deliveries dropped by id")
        return
    seqs = [e["seq"] for e in held]
    ids = {e.seq: e.id for e in journal}
    missing = sorted(set(ids) - set(seqs))
    twice = sorted({s for s in seqs if seqs.count(s) > 1})
    wrong = sorted(e["seq"] for e in held if ids.get(e["seq"], e["id"]) != e["id"])
    result.passed = False
    result.detail = (f"the cloud holds {len(set(seqs))} of {len(ids)}; missing seqs {_ranges(missing)}; "
                     f"seqs held twice {_ranges(twice)}; seqs with another id {_ranges(wrong)}")
    result.nearest = await player.nearest(None)


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value == wanted
    return math.isclose(float(value), float(wanted), rel_tol=1e-6, abs_tol=1e-6)


def _ranges(seqs: list[int]) -> str:
    if not seqs:
        return "none"
    parts, start, prev = [], seqs[0], seqs[0]
    for seq in seqs[1:] + [None]:
        if seq is not None and seq == prev + 1:
            prev = seq
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if seq is not None:
            start = prev = seq
    return ", ".join(parts[:10]) + (" ..." if len(parts) > 10 else "")
