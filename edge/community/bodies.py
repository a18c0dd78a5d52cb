"""Typed bodies of community safety's kinds (edge/community/kinds.py): the fields each emitter writes, for the fleet
contract's schema and the tests that hold the emitters to them. Named by its `Kinds` and imported
only by what reads bodies (the contract, the ingest, the tests): never on the gateway's start or
hot path, where no event is built through a model."""

from __future__ import annotations

from pydantic import Field

from edge.community.kinds import CommunityKind
from edge.events.bodies import Body


class DetectorBody(Body):
    """Where a smoke detector hangs (edge/community/alarms.py)."""

    detector: str
    device: str = Field(description="Its Modbus device.")
    area: str = Field(description="Where it hangs; routes match on it.")


class SmokeBody(DetectorBody):
    """Smoke: the detector's alarm, what it cut and whether it released the doors."""

    troubles: list[str] = Field(description="Its troubles at the time (fault, low_battery, tamper, test, alarm_and_fault).")
    charging_area: str | None = Field(None, description="A charging area's detector: that area.")
    power_cut: list[str] | None = Field(None, description="A charging area's detector: the circuits it cut.")
    fire_release: bool | None = Field(None, description="A detector that releases the egress doors: whether it did.")


class DetectorTroubleBody(DetectorBody):
    """A detector needs service, or is fine again."""

    trouble: str = Field(description="fault, low_battery, tamper, test or alarm_and_fault.")


class PanicBody(Body):
    """A panic button pressed (edge/community/alarms.py)."""

    input: str = Field(description="The input's name.")
    point: str = Field(description="Its point, DEVICE.POINT.")
    area: str


class IntrusionBody(PanicBody):
    """An intrusion input opened, on its own or in an armed zone."""

    input: str = Field(description="The input's name; empty for a zone whose entry delay ran out.")
    point: str | None = Field(description="Its point, DEVICE.POINT (null for a zone whose entry delay ran out).")
    zone: str | None = Field(None, description="An armed zone's intrusion: the zone.")
    zone_state: str | None = Field(None, description="An armed zone's intrusion: the zone's state then.")


class InactivityBody(Body):
    """A resident in care has passed no door within their limit (edge/community/inactivity.py)."""

    tenant: str
    area: str
    limit_hours: float
    contact: str = Field(description="Who is told: a community.contacts name.")
    last_pass_seq: int | None = Field(description="The seq of their last pass; null when none is known.")
    last_pass: str | None = Field(description="When, ISO 8601.")


class UndeliveredBody(Body):
    """Every channel to a recipient failed, or no route covers the alarm (edge/community/notifier.py)."""

    incident: str = Field(description="The alarm event's id.")
    alarm: str = Field(description="smoke, panic, intrusion, trouble or inactivity.")
    area: str
    problem: str
    since_detection_ms: int
    recipient: str | None = Field(None, description="The contact it did not reach.")


BODIES = {
    CommunityKind.SMOKE_ALARM: SmokeBody,
    CommunityKind.SMOKE_CLEARED: DetectorBody,
    CommunityKind.PANIC_ALARM: PanicBody,
    CommunityKind.INTRUSION_ALARM: IntrusionBody,
    CommunityKind.DETECTOR_TROUBLE: DetectorTroubleBody,
    CommunityKind.DETECTOR_TROUBLE_CLEARED: DetectorTroubleBody,
    CommunityKind.INACTIVITY_ALERT: InactivityBody,
    CommunityKind.NOTIFICATION_UNDELIVERED: UndeliveredBody,
}
