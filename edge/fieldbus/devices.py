"""The building's Modbus devices as one service: readings out to whoever listens, commands in.

Door contacts, breaker monitors and pressure loops all sit on the same RS-485 lines, and a
line carries one transaction at a time, so there is one `Poller` for the whole building.
The parts of the core that care about a point subscribe to it; the field bus itself
journals what is about devices rather than points: a device going offline, coming back,
and each fault the poller reports.

`DeviceCommands` lets a technician (and, for what the config allows, the cloud) run any command
a profile defines and read any point now: commissioning a range, an address or a relay's flash
must not need code. Each command is journaled before and after, like a breaker's re-close.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import structlog

from edge.drivers.modbus.observations import (
    DeviceBack,
    DeviceIdentified,
    DeviceOffline,
    DeviceUnidentified,
    Observation,
    PollFault,
    Reading,
    WriteOutcome,
)
from edge.drivers.modbus.device import DeviceCounters, DeviceSpec
from edge.drivers.modbus.poller import Poller
from edge.drivers.modbus.wire import Link, SerialLink, TcpLink
from edge.drivers.modbus.profile import Profile
from edge.config.building import BuildingConfig, SerialBus
from edge.events import Event, Kind, Priority
from edge.runtime import pools
from edge.journal import Journal
from edge.points.status_file import SNAPSHOT_EVERY_S
from edge.runtime.pools import Pool
from edge.runtime.state_files import StateFile, write_atomically

log = structlog.get_logger("edge.fieldbus.devices")

Listener = Callable[[Reading], None]


@dataclass(frozen=True, slots=True)
class PointKey:
    device: str
    point: str

    @classmethod
    def parse(cls, ref: str) -> "PointKey":
        """From the config's DEVICE.POINT form."""
        device, point = ref.split(".", 1)
        return cls(device, point)

    def __str__(self) -> str:
        return f"{self.device}.{self.point}"


def device_specs(config: BuildingConfig, profiles: Mapping[str, Profile]) -> list[DeviceSpec]:
    """What the poller needs to know of each configured device."""
    links: dict[str, Link] = {}
    timeouts: dict[str, float] = {}
    for bus in config.buses:
        if isinstance(bus, SerialBus):
            links[bus.name] = SerialLink(bus.port, baudrate=bus.baud, parity=str(bus.parity.value), stopbits=bus.stop_bits)
        else:
            links[bus.name] = TcpLink(bus.host, bus.port)
        timeouts[bus.name] = bus.timeout_s
    specs = []
    for device in config.devices:
        profile = profiles[device.profile]
        if device.poll_s is not None:
            profile = profile.model_copy(update={"interval_s": device.poll_s})
        specs.append(
            DeviceSpec(name=device.name, profile=profile, link=links[device.bus], unit_id=device.address, timeout_s=timeouts[device.bus])
        )
    return specs


class FieldBus:
    """One poller for the building; subscribers get readings, the journal gets device faults."""

    def __init__(self, specs: list[DeviceSpec], journal: Journal, state_dir: Path | None = None) -> None:
        self.specs = specs
        self.journal = journal
        self.state_dir = state_dir  # where `device-points.json` goes (every point of every device, for `edge points --all`)
        self.latest: dict[PointKey, Reading] = {}  # the last reading of every point polled
        # What the field points hold active on a point, as (severity, words): set by FieldPoints.
        self.point_alarms: Callable[[PointKey], list[tuple[str, str]]] = lambda key: []
        self._listeners: dict[PointKey, list[Listener]] = defaultdict(list)
        self._specs = {spec.name: spec for spec in specs}
        self._poller = Poller(specs, self._observe)

    def respec(self, specs: list[DeviceSpec]) -> None:
        """New lines and addresses for the same devices (a reload; the poller is stopped): the next
        `run` polls by these. Subscriptions and the last readings stay."""
        self.specs = specs
        self._specs = {spec.name: spec for spec in specs}
        self._poller = Poller(specs, self._observe)

    def interval_of(self, key: PointKey) -> float:
        """How often the poller reads `key`: the point's own `interval_s` if it has one, else
        the device's `poll_s`, else the profile's default (the staleness limits count these)."""
        profile = self._specs[key.device].profile
        return profile.interval_of(profile.point(key.point))

    def subscribe(self, key: PointKey, listener: Listener) -> None:
        """Call `listener` with every reading of `key`, on the event loop; it must not block."""
        self._listeners[key].append(listener)

    @property
    def counters(self) -> Mapping[str, DeviceCounters]:
        return self._poller.counters

    def is_online(self, device: str) -> bool:
        return self._poller.is_online(device)

    def profile_of(self, device: str) -> Profile:
        """The map `device` is polled by now (its variant once identified)."""
        return self._poller.profile_of(device)

    async def read_now(self, device: str, names: list[str]) -> dict[str, tuple[Any, str | None]]:
        """Read points of `device` now, ahead of polls: name -> (value, None) or (None, why not)."""
        return await self._poller.read_now(device, names)

    def unidentified(self, device: str) -> str | None:
        """Why `device`'s identify read picked no map (it is polled by its base map only), or None."""
        return self._poller.unidentified(device)

    def device_state(self, device: str) -> str:
        """online, unidentified (answering, watched by its base map only) or offline: what every view shows."""
        if not self.is_online(device):
            return "offline"
        return "unidentified" if self.unidentified(device) is not None else "online"

    async def run(self) -> None:
        """Poll until cancelled (and keep `device-points.json` written). After a crash the supervisor
        calls this again on fresh clients."""
        self._poller = Poller(self.specs, self._observe)
        if self.state_dir is None:
            await self._poller.run()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._poller.run())
            group.create_task(self._snapshots())

    def device_points(self, now: float | None = None, wall: float | None = None) -> list[dict[str, Any]]:
        """Every point of every device as `edge points --all` shows it: value, unit, label, state, when
        read, the point voiding it and every alarm active on it (an invalid reading keeps its alarm)."""
        now = time.monotonic() if now is None else now
        wall = time.time() if wall is None else wall
        rows = []
        for spec in self.specs:
            device_state = self.device_state(spec.name)
            profile = self.profile_of(spec.name)
            for point in profile.points:
                key = PointKey(spec.name, point.name)
                reading = self.latest.get(key)
                value = None if reading is None else reading.value
                voided = reading is not None and value is None
                active = self.point_alarms(key)
                if device_state == "offline":
                    state = "offline"
                elif reading is None:
                    state = "never_read"
                elif voided:
                    state = "invalid"
                elif any(severity == "alarm" for severity, _ in active):
                    state = "alarm"
                elif active:
                    state = "warning"
                else:
                    state = "unidentified" if device_state == "unidentified" else "ok"
                label = None
                if isinstance(value, bool):
                    label = "on" if value else "off"
                elif point.enum is not None and value is not None:
                    label = point.enum.get(value, f"unknown ({value})")
                elif isinstance(value, str):
                    label = value
                rows.append({
                    "device": spec.name, "point": point.name, "value": value if isinstance(value, int | float) else None,
                    "label": label, "unit": point.unit, "state": state, "device_state": device_state,
                    "read_at": None if reading is None else wall - (now - reading.mono),
                    "voided_by": f"{spec.name}.{point.void_if.point}" if voided and point.void_if is not None else None,
                    "alarms": [text for _, text in active],
                })
        return rows

    async def _snapshots(self) -> None:
        """device-points.json every couple of seconds; a disk that refuses it costs that file only."""
        assert self.state_dir is not None
        path = self.state_dir / DEVICE_POINTS_NAME
        snapshot = StateFile(path, f"{DEVICE_POINTS_NAME} (edge points --all)", self.journal)
        while True:
            document = {"written_at": time.time(), "points": self.device_points()}
            try:
                await pools.call(Pool.FILES, write_atomically, path, json.dumps(document, default=str).encode())
            except OSError as refused:
                await snapshot.refused(refused)
            else:
                await snapshot.written()
            await asyncio.sleep(SNAPSHOT_EVERY_S)

    async def send(
        self, device: str, command: str, value: float | str | None = None, *, sending: Callable[[], None] | None = None
    ) -> WriteOutcome:
        """Write a profile command, ahead of polls; the outcome is true when the device confirmed
        it (result register and read-back included) and otherwise says why not (`sent` False when
        a precondition refused it and nothing went out). `sending` runs just before the write."""
        return await self._poller.write_command(device, command, value, sending=sending)

    async def command(self, device: str, command: str, value: float | None = None) -> bool:
        """`send`, for callers that need only yes or no."""
        return (await self.send(device, command, value)).confirmed

    async def _observe(self, observation: Observation) -> None:
        if isinstance(observation, Reading):
            self.latest[PointKey(observation.device, observation.point)] = observation
            for listener in self._listeners.get(PointKey(observation.device, observation.point), ()):
                listener(observation)
            return
        event = _device_event(observation)
        say = log.info if isinstance(observation, DeviceIdentified) else log.warning
        say("field device", event_id=event.id, kind=str(event.kind), device=event.source, **event.body)
        await self.journal.append(event)


def _device_event(observation: Observation) -> Event:
    if isinstance(observation, DeviceOffline):
        return Event(kind=Kind.DEVICE_OFFLINE, priority=Priority.FAULT, source=observation.device, body={"reason": str(observation.reason)})
    if isinstance(observation, DeviceBack):
        return Event(kind=Kind.DEVICE_BACK, priority=Priority.FAULT, source=observation.device)
    if isinstance(observation, DeviceUnidentified):
        return Event(kind=Kind.DEVICE_UNIDENTIFIED, priority=Priority.FAULT, source=observation.device,
                     body={"point": observation.point, "detail": observation.detail, "retry_in_s": observation.retry_in_s})
    if isinstance(observation, DeviceIdentified):
        return Event(kind=Kind.DEVICE_IDENTIFIED, priority=Priority.FAULT, source=observation.device,
                     body={"identity": observation.identity, "variant": observation.variant})
    assert isinstance(observation, PollFault)
    return Event(
        kind=Kind.DEVICE_FAULT,
        priority=Priority.FAULT,
        source=observation.device,
        body={"fault": str(observation.kind), "detail": observation.detail},
    )


DEVICE_POINTS_NAME = "device-points.json"
MAX_READ_POINTS = 64
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class DeviceCommands:
    """`device.command` and `device.read`: any profile command, audited, and any point, read now.

    `reserved` maps (device, command) to why it is not run here: a circuit's breaker closes only
    through `breaker.close`, which checks the circuit's alarms and holds first. `cloud_allowed` holds
    the DEVICE.COMMAND names the cloud may run (the config's `cloud_commands`; none by default)."""

    def __init__(self, fieldbus: FieldBus, journal: Journal, reserved: Mapping[tuple[str, str], str] | None = None,
                 cloud_allowed: frozenset[str] = frozenset()) -> None:
        self.fieldbus = fieldbus
        self.journal = journal
        self.reserved = dict(reserved or {})
        self.cloud_allowed = cloud_allowed
        self._devices = {spec.name for spec in fieldbus.specs}

    async def command(self, request: dict[str, Any], via: str = "control") -> dict[str, Any]:
        """Run one profile command (control op `device.command`): journaled when asked and when it ends;
        refused, with nothing sent, for an unknown device or command, a bad value or a precondition."""
        device, name, value = request.get("device"), request.get("command"), request.get("value")
        audit = {"device": device, "command": name, "value": value, "operator": request.get("operator"),
                 "reason": request.get("reason"), "via": via}
        problems = self._problems(device, name, value, request.get("reason"))
        if not problems and via == "cloud" and f"{device}.{name}" not in self.cloud_allowed:
            problems = [f"{device}.{name} is not in the config's cloud_commands: the cloud may not run it"]
        if problems:
            return await self._refused(audit, problems)
        requested = await self.journal.append(Event(Kind.DEVICE_COMMAND_REQUESTED, Priority.ALARM, device, audit))
        try:
            outcome = await self.fieldbus.send(device, name, value if value is None or isinstance(value, str) else float(value))
        except Exception as error:  # a driver bug is a failed command, never a crash of the channel
            log.exception("device command failed", device=device, command=name)
            outcome = WriteOutcome(False, f"gateway error: {error!r}")
        if not outcome.sent:
            answer = await self._refused({**audit, "request_seq": requested}, [outcome.reason])
            return {**answer, "error": f"{outcome.reason}; nothing was sent to {device}", "request_seq": requested}
        kind = Kind.DEVICE_COMMAND_CONFIRMED if outcome.confirmed else Kind.DEVICE_COMMAND_UNCONFIRMED
        result = await self.journal.append(Event(kind, Priority.ALARM, device, {**audit, "request_seq": requested, "outcome": outcome.reason}))
        answer = {"ok": outcome.confirmed, "device": device, "command": name, "outcome": outcome.reason,
                  "request_seq": requested, "result_seq": result}
        return answer if outcome.confirmed else {**answer, "error": f"{device} did not confirm {name}: {outcome.reason}"}

    async def cloud_command(self, request: dict[str, Any]) -> dict[str, Any]:
        """`device.command` from a signed cloud message: only what `cloud_commands` allows."""
        return await self.command(request, via="cloud")

    async def read(self, request: dict[str, Any]) -> dict[str, Any]:
        """Read points now (control op `device.read`; `points` a comma-separated list, none for all)."""
        device = request.get("device")
        if not isinstance(device, str) or device not in self._devices:
            return {"ok": False, "error": f"no device named {device!r}; known: {', '.join(sorted(self._devices))}"}
        profile = self.fieldbus.profile_of(device)
        known = {p.name: p for p in profile.points}
        asked = request.get("points")
        names = [n.strip() for n in asked.split(",") if n.strip()] if isinstance(asked, str) and asked.strip() else list(known)
        unknown = [n for n in names if n not in known]
        if unknown:
            return {"ok": False, "error": f"{device} has no point {', '.join(unknown)}; its points: {', '.join(known)}"}
        if len(names) > MAX_READ_POINTS and isinstance(asked, str) and asked.strip():
            return {"ok": False, "error": f"at most {MAX_READ_POINTS} points named a read (name none for all)"}
        found = await self.fieldbus.read_now(device, names)
        rows = []
        for name in names:
            value, problem = found[name]
            point = known[name]
            label = None
            if isinstance(value, bool):
                label = "on" if value else "off"
            elif point.enum is not None and value is not None:
                label = point.enum.get(value, f"unknown ({value})")
            rows.append({"point": name, "value": value, "unit": point.unit, "type": point.type.value, "label": label,
                         "problem": problem})
        return {"ok": all(r["problem"] is None for r in rows), "device": device, "state": self.fieldbus.device_state(device),
                "points": rows, **({} if all(r["problem"] is None for r in rows) else
                                   {"error": "; ".join(f"{r['point']}: {r['problem']}" for r in rows if r["problem"])})}

    def _problems(self, device: Any, name: Any, value: Any, reason: Any) -> list[str]:
        if not isinstance(device, str) or device not in self._devices:
            return [f"no device named {device!r}; known: {', '.join(sorted(self._devices))}"]
        commands = {c.name: c for c in self.fieldbus.profile_of(device).commands}
        if not isinstance(name, str) or name not in commands:
            known = ", ".join(commands) or "none (its profile defines no commands)"
            return [f"{device} has no command {name!r}; its commands: {known}"]
        problems = []
        if (device, name) in self.reserved:
            problems.append(self.reserved[(device, name)])
        if not isinstance(reason, str) or len(reason.strip()) < 10:
            problems.append("reason: say why, in at least 10 characters")
        if isinstance(value, str):
            if commands[name].argument is None or commands[name].argument.enum is None:
                problems.append(f"value: a number, not {value!r}")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)):
            problems.append(f"value: a number, not {value!r}")
        return problems

    async def _refused(self, audit: dict[str, Any], problems: list[str]) -> dict[str, Any]:
        body = {k: v if isinstance(v, str | int | float | None) else repr(v) for k, v in audit.items()}
        seq = await self.journal.append(Event(Kind.DEVICE_COMMAND_REFUSED, Priority.ALARM, str(audit.get("device")),
                                              {**body, "problems": problems}))
        return {"ok": False, "refused": True, "error": "; ".join(problems), "result_seq": seq}
