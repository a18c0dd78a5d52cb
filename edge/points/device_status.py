"""What devices say about themselves: status bits, fault codes and states, as alarms and rows.

A breaker that trips on its own protection, a relay module's alarm bit, a monitor's CT-break
flag: none of them is a circuit's current or a water point's pressure, yet each is worth an
alarm. A profile marks such values with `alarms` on the point (and `enum` names its codes);
the building config can add `alarms` on any point. Every watched point, and each circuit's
breaker state, becomes a StatusPoint: shown by `edge points`, journaled on each change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.drivers.modbus.points import Point, PointAlarm
from edge.drivers.modbus.profile import Profile
from edge.config.building import BuildingConfig
from edge.events import Event, Kind, Priority
from edge.fieldbus.devices import PointKey
from edge.points import Change, Severity, Transition
from edge.points.status_rule import StatusRule


@dataclass
class StatusPoint:
    """One device point watched for what the device says; `active` is by alarm text."""

    owner: str  # the circuit a breaker serves, else the device
    owner_key: str  # "circuit" or "device"
    key: PointKey
    place: dict[str, Any]
    point: Point
    rules: list[StatusRule] = field(default_factory=list)
    value: Any = None
    read_at: float | None = None  # monotonic
    active: dict[str, Severity] = field(default_factory=dict)

    def label(self, value: Any = ...) -> str | None:
        """The value as the device manual names it (an enum label, on/off), None for a number."""
        value = self.value if value is ... else value
        if value is None:
            return None
        if isinstance(value, bool):
            return "on" if value else "off"
        if self.point.enum is not None:
            return self.point.enum.get(value, f"unknown ({value})")
        return value if isinstance(value, str) else None

    def observe(self, value: Any, now: float) -> list[tuple[StatusRule, Transition]]:
        changes = [(rule, t) for rule in self.rules for t in rule.observe(value, now)]
        for rule, transition in changes:
            if transition.change is Change.RAISED:
                self.active[rule.text] = rule.severity
            else:
                self.active.pop(rule.text, None)
        return changes


def rule_for(key: PointKey, point: Point, alarm: PointAlarm) -> StatusRule:
    return StatusRule(
        str(key), alarm.predicate(point.enum), severity=Severity(alarm.severity), text=alarm.text,
        threshold=alarm.above if alarm.above is not None else alarm.below,
    )


def status_points(config: BuildingConfig, profiles: dict[str, Profile]) -> dict[PointKey, StatusPoint]:
    """Every point with an alarm in its profile or in the config, and every breaker's read-back
    point (its open/closed state), by key."""
    device_profiles = {d.name: profiles[d.profile] for d in config.devices}
    serves: dict[str, list[Any]] = {}
    for circuit in config.circuits:
        if circuit.breaker:
            serves.setdefault(circuit.breaker, []).append(circuit)
    found: dict[PointKey, StatusPoint] = {}

    def watch(device: str, point: Point) -> StatusPoint:
        key = PointKey(device, point.name)
        if key not in found:
            circuits = serves.get(device, [])
            if len(circuits) == 1:
                owner, owner_key, place = circuits[0].name, "circuit", {"floor": circuits[0].floor, "box": circuits[0].box}
            else:
                owner, owner_key, place = device, "device", {}
            found[key] = StatusPoint(owner, owner_key, key, place, point)
        return found[key]

    for device, profile in device_profiles.items():
        for point in profile.points:
            for alarm in point.alarms:
                status = watch(device, point)
                status.rules.append(rule_for(status.key, point, alarm))
        if device in serves and profile.commands and any(c.name == "trip" for c in profile.commands):
            readback = profile.command("trip").readback
            if readback is not None:
                watch(device, profile.point(readback.point))
    for alarm in config.alarms:
        key = PointKey.parse(alarm.point)
        point = device_profiles[key.device].point(key.point)
        status = watch(key.device, point)
        status.rules.append(rule_for(key, point, alarm))
    return found


def status_event(status: StatusPoint, rule: StatusRule, transition: Transition, value: Any) -> Event:
    """alarm.raised / alarm.cleared for a device status, with the manual's name for the value."""
    return Event(
        kind=Kind.CONDITION_RAISED if transition.change is Change.RAISED else Kind.CONDITION_CLEARED,
        priority=Priority.ALARM,
        source=status.owner,
        body={
            status.owner_key: status.owner, **status.place, "quantity": str(transition.quantity),
            "condition": str(transition.condition), "severity": str(transition.severity), "text": rule.text,
            "value": value if isinstance(value, bool | int | float | str) else None, "label": status.label(value),
            "threshold": transition.threshold, "unit": status.point.unit, "point": str(status.key),
        },
    )
