"""Commands to a Modbus device: a named write, its preconditions, the device's answer and the read-back.

A command on a breaker or a door relay is one write ahead of every waiting poll, but it is not
done when the device acknowledges it: its result register (if the map has one) must say done, and
its read-back point (if any) must show the expected value in time. Until then the caller is told
why not, so a relay that cannot be confirmed raises an alarm instead of being taken as done.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence

from edge.drivers.modbus.device import Device
from edge.drivers.modbus.lane import Priority
from edge.drivers.modbus.observations import FaultKind, Reading, WriteOutcome
from edge.drivers.modbus.plan import plan_reads
from edge.drivers.modbus.points import Match, Point
from edge.drivers.modbus.writes import Result
from edge.drivers.modbus.registers import DecodeError, EncodeError, Value, command_words, decode_point
from edge.drivers.modbus.wire import TransactionFailed, answer_words, read_for, write_for


async def write_command(
    device: Device, command: str, value: float | str | None = None, *, sending: Callable[[], None] | None = None
) -> WriteOutcome:
    """Write a named command (with `value` if it takes an argument). The outcome is true once
    the device acknowledged it, its result register (if any) says done, and its read-back
    point (if any) shows the expected value in time; otherwise `reason` says why not, e.g.
    a precondition that refused it ("breaker in local mode", `sent` False) or the device's
    own refusal. `sending` is called once the preconditions passed, just before the write,
    so a caller journals "sent" only for a command that goes out."""
    profile = device.spec.profile
    order = profile.command(command)
    try:
        words = command_words(profile, order, value)
    except EncodeError as error:
        return WriteOutcome(False, f"refused: {error}", sent=False)
    for condition in order.preconditions:
        point = profile.point(condition.point)
        if point.void_if is None:
            seen, problem = await read_point(device, point)
        else:  # its voider is read with it: a voided precondition cannot say the command is safe
            ((seen, problem),) = (await read_now(device, [point.name])).values()
        if problem is not None:
            return WriteOutcome(False, f"refused: cannot read {point.name} ({problem})", sent=False, refused_by=point.name)
        if not condition.predicate(point.enum)(seen):
            return WriteOutcome(False, f"refused: {condition.refuse}", sent=False, refused_by=point.name)
    if sending is not None:
        sending()
    try:
        response = await device.transact(write_for(order, words), Priority.COMMAND)
    except TransactionFailed as failure:
        await device.failed(failure, f"write {command}")
        return WriteOutcome(False, f"no answer: {failure.detail}")
    if response.isError():
        await device.fault(FaultKind.EXCEPTION, f"write {command}", f"write {command}: code {response.exception_code}")
        return WriteOutcome(False, f"device answered exception {response.exception_code}")
    device.failing.discard(f"write {command}")
    if order.result is not None:
        refused = await _result(device, order.result)
        if refused is not None:
            return WriteOutcome(False, refused)
    if order.readback is None:
        return WriteOutcome(True, "done")
    point = profile.point(order.readback.point)
    expect = order.readback.expected(point, None if order.argument is None else order.argument.code_of(value))
    clock = device.clock
    deadline = clock() + order.readback.within_s
    while True:
        seen, problem = await read_point(device, point)
        if problem is None and matches(seen, expect):
            return WriteOutcome(True, "confirmed")
        if clock() >= deadline:
            shown = problem or f"{point.name} reads {seen}"
            return WriteOutcome(False, f"not confirmed within {order.readback.within_s:g} s: {shown}")
        await asyncio.sleep(min(0.1, max(0.0, deadline - clock())))


async def read_now(device: Device, names: Sequence[str]) -> dict[str, tuple[Value | None, str | None]]:
    """Read the named points now, ahead of polls, in as few requests as the map allows: each name
    gives (value, None), or (None, what went wrong). A point its voider voids in the same read
    gives (None, "voided by VOIDER")."""
    profile = device.spec.profile
    wanted = [profile.point(name) for name in names]
    voiders = {p.void_if.point for p in wanted if p.void_if is not None}
    points = wanted + [profile.point(v) for v in sorted(voiders) if v not in names]
    reads = plan_reads(points, max_registers=profile.max_registers_per_read, max_bits=profile.max_bits_per_read,
                       max_gap=profile.max_gap)
    found: dict[str, tuple[Value | None, str | None]] = {}
    for read in reads:
        what = f"read {read.function.value} {read.address}+{read.count}"
        try:
            response = await device.transact(read_for(read), Priority.COMMAND)
        except TransactionFailed as failure:
            await device.failed(failure, what)
            found.update({p.name: (None, f"no answer: {failure.detail}") for p in read.points})
            continue
        if response.isError():
            found.update({p.name: (None, f"{what}: the device answered exception {response.exception_code}") for p in read.points})
            continue
        words = answer_words(read, response)
        for point, where in read.slices:
            try:
                found[point.name] = (decode_point(profile, point, words[where]), None)
            except DecodeError as error:
                found[point.name] = (None, str(error))
    for point in wanted:
        if point.void_if is not None and found[point.name][1] is None:
            voider, problem = found[point.void_if.point]
            if problem is not None or point.void_if.predicate(profile.point(point.void_if.point).enum)(voider):
                found[point.name] = (None, f"voided by {point.void_if.point}")
    return {name: found[name] for name in names}


async def read_point(
    device: Device, point: Point, priority: Priority = Priority.COMMAND, report: bool = True
) -> tuple[Value | None, str | None]:
    """Read one point now (by default ahead of polls): (value, None), or (None, what went wrong).
    A value read is also reported as a `Reading`, unless `report` is False."""
    (read,) = plan_reads([point])
    try:
        response = await device.transact(read_for(read), priority)
        words = None if response.isError() else device.words(read, response, read.function.is_bit)
    except TransactionFailed as failure:
        await device.failed(failure, f"read {point.name}")
        return None, failure.detail
    if words is None:
        what = f"read {read.function.value} {read.address}+{read.count}"
        await device.fault(FaultKind.EXCEPTION, what, f"{what}: code {response.exception_code}")
        return None, "the device answered with an exception"
    try:
        value = decode_point(device.spec.profile, point, words[read.slice_of(point)])
    except DecodeError as error:
        await device.fault(FaultKind.DECODE, point.name, f"{point.name}: {error}")
        return None, str(error)
    device.failing.discard(point.name)
    if report:
        await device.emit(Reading(device.spec.name, point.name, value, point.unit, device.clock()))
    return value, None


async def _result(device: Device, result: Result) -> str | None:
    """None when the device's result register says done; else why not, in its words."""
    point = device.spec.profile.point(result.point)
    ok = Match(when=result.ok).values(point.enum)
    pending = Match(when=result.pending).values(point.enum) if result.pending else frozenset()
    if result.settle_s:
        await asyncio.sleep(result.settle_s)
    clock = device.clock
    deadline = clock() + result.within_s
    while True:
        seen, problem = await read_point(device, point)
        if problem is None and seen in ok:
            return None
        if problem is None and seen not in pending:
            label = point.enum.get(seen) if point.enum else None
            return f"refused by the device: {label or f'{point.name} = {seen}'}"
        if clock() >= deadline:
            return f"no result within {result.within_s:g} s: {problem or 'still pending'}"
        await asyncio.sleep(min(0.05, max(0.0, deadline - clock())))


def matches(value: Value, expect: float | bool) -> bool:
    """Whether a point's value shows what a command expects (a flag as a flag, a number within 1e-6)."""
    if isinstance(expect, bool) or isinstance(value, bool):
        return bool(value) == bool(expect)
    return math.isclose(value, expect, rel_tol=1e-6, abs_tol=1e-6)
