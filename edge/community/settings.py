"""The `community:` section of the building config: detectors, alarm inputs, charging areas,
who is told of what, and the SMS modem.

Kept apart from edge/config/building.py (which appends it to BuildingConfig) so the community
safety part reads as one file; `check` holds the checks that span sections (a route naming
a contact that does not exist, an escalation that comes back to itself), reported with
the config's other problems, all at once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from edge.doors.schedule import WeeklySchedule
from edge.config.settings import Name, PointRef, Problem, References, Strict, unique

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig

Phone = Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$", description="E.164 or national number, digits only.")]

SMOKE_SIGNALS = ("alarm", "fault", "low_battery", "test", "tamper")
"""The points a smoke detector's profile names (see drivers/modbus/profiles/generic-smoke.yaml)."""


class AlarmKind(StrEnum):
    """What a route can be about."""

    SMOKE = "smoke"
    PANIC = "panic"
    INTRUSION = "intrusion"
    TROUBLE = "trouble"  # a detector's fault, low battery, tamper
    INACTIVITY = "inactivity"  # a resident in care has not passed a door (told to their care contact)


class Role(StrEnum):
    LANDLORD = "landlord"
    TENANT = "tenant"
    MICRO_FIRE_STATION = "micro_fire_station"
    GRID_MANAGER = "grid_manager"
    POLICE_STATION = "police_station"
    CARE_CONTACT = "care_contact"
    COMMAND_CENTRE = "command_centre"
    MAINTENANCE = "maintenance"


class Channel(StrEnum):
    CLOUD = "cloud"  # a notify.sent event the cloud delivers (app push, call centre)
    SMS = "sms"  # through the gateway's own modem, when the cloud cannot


class SmokeDetector(Strict):
    """A networked smoke detector: a device whose profile has the SMOKE_SIGNALS points."""

    name: Name
    device: Name = Field(description="The Modbus device (profile generic-smoke or one with the same point names).")
    area: Name = Field(description="Where it hangs: a unit, a corridor, a charging area; routes match on it.")
    fire_release: bool = Field(False, description="Its alarm also releases every egress door (the fire release).")


class AlarmInput(Strict):
    """An on/off input that means trouble: a door or window contact, or a panic button."""

    name: Name
    kind: Literal["intrusion", "panic"]
    point: PointRef = Field(description="The input, as DEVICE.POINT.")
    area: Name
    active: bool = Field(True, description="The value that means open (a contact) or pressed (a button).")


class ChargingArea(Strict):
    """An e-bike charging area: smoke from its detectors opens its posts' circuits."""

    name: Name
    detectors: list[Name] = Field(min_length=1, description="Smoke detectors (community.detectors names).")
    circuits: list[Name] = Field(min_length=1, description="Circuits of the charging posts (circuits names, each with a breaker).")


class Contact(Strict):
    """Someone to tell: a person or a duty desk."""

    name: Name
    role: Role
    phone: Phone | None = None
    channels: list[Channel] = Field(default_factory=lambda: [Channel.CLOUD, Channel.SMS], min_length=1)


class Route(Strict):
    """Who is told of which alarms in which areas; unacknowledged, it escalates."""

    name: Name
    alarms: list[AlarmKind] = Field(default_factory=list, description="Kinds that start here; empty: reached only by escalation.")
    areas: list[str] = Field(default_factory=lambda: ["*"], description="Area names, or '*' for every area.")
    notify: list[Name] = Field(min_length=1, description="Contacts (community.contacts names).")
    ack_within_s: float | None = Field(None, gt=0, le=86400, description="Escalate when not acknowledged within this.")
    escalate_to: Name | None = Field(None, description="The next route (its name), told when this one is not acknowledged.")


class Modem(Strict):
    """The serial GSM/4G modem for SMS when the uplink cannot deliver."""

    port: str = Field(description="Serial device path, e.g. /dev/serial/by-id/usb-...-if02.")
    baud: Literal[9600, 19200, 38400, 57600, 115200] = 115200
    pin_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the SIM PIN.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Longest wait for one AT command's answer.")
    retries: int = Field(3, ge=1, le=10, description="Attempts per message before it is a failure.")
    delivery_within_s: float = Field(120, gt=0, le=86400, description="A message with no delivery report by then is journaled as unconfirmed.")


class IntrusionZone(Strict):
    """A unit's door and window sensors, armed while the tenant is away."""

    name: Name
    area: Name
    inputs: list[Name] = Field(min_length=1, description="Intrusion inputs (community.inputs names) of the zone.")
    entry: Name | None = Field(None, description="The input on the door people come in by: it starts the entry delay.")
    door: Name | None = Field(None, description="The unit's door (doors names): a granted card there arms (leaving) or disarms (home).")
    schedule: str | None = Field(None, description="Armed inside these local windows, e.g. 'mon-fri 09:00-17:00'.")
    exit_delay_s: float = Field(30, ge=0, le=600)
    entry_delay_s: float = Field(30, ge=0, le=600)


class AckButton(Strict):
    point: PointRef
    area: str = Field("*", description="Acknowledges the open alarms of this area ('*': all).")


class CommunitySafety(Strict):
    """Smoke, intrusion and panic inputs, charging areas, and who is told."""

    detectors: list[SmokeDetector] = Field(default_factory=list)
    inputs: list[AlarmInput] = Field(default_factory=list)
    charging_areas: list[ChargingArea] = Field(default_factory=list)
    zones: list[IntrusionZone] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    ack_buttons: list[AckButton] = Field(default_factory=list, description="Local buttons that acknowledge alarms.")
    modem: Modem | None = None
    cloud_confirm_s: float = Field(20, gt=0, le=3600, description="A notification the cloud has not taken by then also goes by SMS.")
    sms_per_hour: int = Field(6, ge=1, le=1000, description="Most SMS per recipient per hour; the first of a new kind always goes.")
    inactivity_check_s: float = Field(60, gt=0, le=3600, description="How often the inactivity watch reads the journal.")

    @property
    def active(self) -> bool:
        """Anything to watch or anyone to tell."""
        return bool(self.detectors or self.inputs or self.contacts)


def check(config: BuildingConfig, refs: References) -> list[Problem]:
    """Checks that span sections: the inputs' points, the circuits a charging area cuts (each
    needs a breaker), a zone's door, the routes' recipients and escalations."""
    community = config.community
    circuits = {c.name: c.breaker is not None for c in config.circuits}
    doors = {d.name for d in config.doors}
    problems: list[Problem] = []
    base = ("community",)
    for section, kind in (("detectors", "detector"), ("inputs", "input"), ("charging_areas", "charging area"),
                          ("zones", "zone"), ("contacts", "contact"), ("routes", "route")):
        problems += unique((*base, section), getattr(community, section), kind)
    for index, detector in enumerate(community.detectors):
        for signal in SMOKE_SIGNALS:
            problems += refs.point(f"{detector.device}.{signal}", (*base, "detectors", index, "device"), True)
    for index, alarm_input in enumerate(community.inputs):
        problems += refs.point(alarm_input.point, (*base, "inputs", index, "point"), True)
    for index, button in enumerate(community.ack_buttons):
        problems += refs.point(button.point, (*base, "ack_buttons", index, "point"), True)
    detectors = {d.name for d in community.detectors}
    for index, area in enumerate(community.charging_areas):
        for d_index, name in enumerate(area.detectors):
            if name not in detectors:
                problems.append(((*base, "charging_areas", index, "detectors", d_index), f"no detector named {name!r}"))
        for c_index, name in enumerate(area.circuits):
            if name not in circuits:
                problems.append(((*base, "charging_areas", index, "circuits", c_index), f"no circuit named {name!r}"))
            elif not circuits[name]:
                problems.append(((*base, "charging_areas", index, "circuits", c_index), f"circuit {name!r} has no breaker to cut"))
    intrusion = {i.name for i in community.inputs if i.kind == "intrusion"}
    zoned: dict[str, str] = {}
    for index, zone in enumerate(community.zones):
        loc = (*base, "zones", index)
        for i_index, name in enumerate(zone.inputs):
            if name not in intrusion:
                problems.append(((*loc, "inputs", i_index), f"no intrusion input named {name!r}"))
            elif zoned.setdefault(name, zone.name) != zone.name:
                problems.append(((*loc, "inputs", i_index), f"input {name!r} is already in zone {zoned[name]!r}"))
        if zone.entry is not None and zone.entry not in zone.inputs:
            problems.append(((*loc, "entry"), f"the entry input {zone.entry!r} is not one of the zone's inputs"))
        if zone.door is not None and zone.door not in doors:
            problems.append(((*loc, "door"), f"no door named {zone.door!r}"))
        if zone.schedule is not None:
            try:
                WeeklySchedule.parse(zone.schedule)
            except ValueError as error:
                problems.append(((*loc, "schedule"), str(error)))
    contacts = {c.name: c for c in community.contacts}
    routes = {r.name: r for r in community.routes}
    for index, route in enumerate(community.routes):
        for n_index, name in enumerate(route.notify):
            contact = contacts.get(name)
            if contact is None:
                problems.append(((*base, "routes", index, "notify", n_index), f"unknown recipient {name!r}: not in community.contacts"))
        if route.escalate_to is not None:
            if route.escalate_to not in routes:
                problems.append(((*base, "routes", index, "escalate_to"), f"no route named {route.escalate_to!r}"))
            elif route.ack_within_s is None:
                problems.append(((*base, "routes", index, "ack_within_s"), "escalate_to needs ack_within_s (when to escalate)"))
            else:
                chain = escalation_loop(route.name, routes)
                if chain:
                    problems.append(((*base, "routes", index, "escalate_to"), f"escalation loops back: {' -> '.join(chain)}"))
    for index, contact in enumerate(community.contacts):
        if Channel.SMS in contact.channels and contact.phone is None:
            problems.append(((*base, "contacts", index, "phone"), "the sms channel needs a phone number"))
    return problems


def escalation_loop(start: str, routes: dict[str, Route]) -> list[str]:
    """The chain from `start` when following escalate_to comes back to a route already on it; else []."""
    chain = [start]
    current = routes[start].escalate_to
    while current is not None and current in routes:
        chain.append(current)
        if current in chain[:-1]:
            return chain
        current = routes[current].escalate_to
    return []


SECTIONS = {"community": (CommunitySafety, Field(
    CommunitySafety(), description="Smoke, intrusion and panic inputs, charging areas, and who is told (edge/community/)."))}
"""The building config's sections this feature owns (edge/feature.py)."""
