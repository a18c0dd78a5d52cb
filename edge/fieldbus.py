"""The building's Modbus devices as one service: readings out to whoever listens, commands in.

Door contacts, breaker monitors and pressure loops all sit on the same RS-485 lines, and a
line carries one transaction at a time, so there is one `Poller` for the whole building.
The parts of the core that care about a point subscribe to it; the field bus itself
journals what is about devices rather than points: a device going offline, coming back,
and each fault the poller reports.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Mapping

import structlog

from drivers.modbus.observations import (
    CommandOutcome,
    DeviceBack,
    DeviceIdentified,
    DeviceOffline,
    DeviceUnidentified,
    Observation,
    PollFault,
    Reading,
)
from drivers.modbus.poller import DeviceCounters, DeviceSpec, Link, Poller, SerialLink, TcpLink
from drivers.modbus.profile import Profile
from edge.config import BuildingConfig, SerialBus
from edge.events import Event, Kind, Priority
from edge.journal import Journal

log = structlog.get_logger("edge.fieldbus")

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

    def __init__(self, specs: list[DeviceSpec], journal: Journal) -> None:
        self.specs = specs
        self.journal = journal
        self._listeners: dict[PointKey, list[Listener]] = defaultdict(list)
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

    def unidentified(self, device: str) -> str | None:
        """Why `device`'s identify read picked no map (it is polled by its base map only), or None."""
        return self._poller.unidentified(device)

    def device_state(self, device: str) -> str:
        """online, unidentified (answering, watched by its base map only) or offline: what every view shows."""
        if not self.is_online(device):
            return "offline"
        return "unidentified" if self.unidentified(device) is not None else "online"

    async def run(self) -> None:
        """Poll until cancelled. After a crash the supervisor calls this again on fresh clients."""
        self._poller = Poller(self.specs, self._observe)
        await self._poller.run()

    async def send(
        self, device: str, command: str, value: float | None = None, *, sending: Callable[[], None] | None = None
    ) -> CommandOutcome:
        """Write a profile command, ahead of polls; the outcome is true when the device confirmed
        it (result register and read-back included) and otherwise says why not (`sent` False when
        a precondition refused it and nothing went out). `sending` runs just before the write."""
        return await self._poller.write_command(device, command, value, sending=sending)

    async def command(self, device: str, command: str, value: float | None = None) -> bool:
        """`send`, for callers that need only yes or no."""
        return (await self.send(device, command, value)).confirmed

    async def _observe(self, observation: Observation) -> None:
        if isinstance(observation, Reading):
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
