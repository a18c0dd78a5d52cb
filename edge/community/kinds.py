"""Community safety's event kinds: smoke, intrusion and panic, detectors' trouble, who was told
and how (the SMS path), the care watch, intrusion zones and trail searches, with their words
on the page.

Composed by `edge.events.kinds` (see there); a wire name never changes once journaled.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from edge.events.words import Body
from edge.events import Kinds


class CommunityKind(StrEnum):
    SMOKE_ALARM = "alarm.smoke"
    SMOKE_CLEARED = "alarm.smoke_cleared"
    PANIC_ALARM = "alarm.panic"
    INTRUSION_ALARM = "alarm.intrusion"
    INTRUSION_LOGGED = "community.intrusion_disarmed"  # a sensor that opened on a disarmed zone
    DETECTOR_TROUBLE = "fault.detector"  # fault, low battery, tamper, test, alarm and fault together
    DETECTOR_TROUBLE_CLEARED = "fault.detector_cleared"
    NOTIFICATION_SENT = "notify.sent"  # one recipient, one channel; the cloud delivers "cloud"
    NOTIFICATION_ESCALATED = "notify.escalated"
    NOTIFICATION_ACKNOWLEDGED = "notify.acknowledged"
    NOTIFICATION_UNDELIVERED = "alarm.notification_undelivered"  # every channel to a recipient failed
    SMS_SENT = "notify.sms_sent"
    SMS_DELIVERED = "notify.sms_delivered"
    SMS_CAPPED = "notify.sms_capped"
    SMS_FAILED = "fault.sms_failed"
    MODEM_FAULT = "fault.modem"
    TRAIL_SEARCHED = "privacy.trail_searched"  # who searched whose entry trail, how many rows
    INACTIVITY_ALERT = "alarm.inactivity"  # a resident in care has not passed a door within their limit
    CARE_SET = "community.care_set"  # a resident's care watch set, changed, paused or ended by command
    ZONE_STATE = "community.zone"  # an intrusion zone arming, armed, disarmed, or its entry delay started
    ZONE_NOT_ARMED = "fault.zone_not_armed"  # could not arm: a sensor is open


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


KINDS = Kinds("community", CommunityKind, {
    CommunityKind.SMOKE_ALARM: "Smoke",
    CommunityKind.SMOKE_CLEARED: "Smoke cleared",
    CommunityKind.PANIC_ALARM: "Panic button pressed",
    CommunityKind.INTRUSION_ALARM: "Intrusion",
    CommunityKind.INTRUSION_LOGGED: "Sensor opened while disarmed",
    CommunityKind.DETECTOR_TROUBLE: "Detector needs service",
    CommunityKind.DETECTOR_TROUBLE_CLEARED: "Detector fine again",
    CommunityKind.NOTIFICATION_SENT: "Someone notified",
    CommunityKind.NOTIFICATION_ESCALATED: "Alarm passed to the next contact",
    CommunityKind.NOTIFICATION_ACKNOWLEDGED: "Alarm acknowledged",
    CommunityKind.NOTIFICATION_UNDELIVERED: "Alarm reached nobody",
    CommunityKind.SMS_SENT: "SMS sent",
    CommunityKind.SMS_DELIVERED: "SMS delivered",
    CommunityKind.SMS_CAPPED: "SMS held back (hourly limit)",
    CommunityKind.SMS_FAILED: "SMS failed",
    CommunityKind.MODEM_FAULT: "SMS modem not working",
    CommunityKind.TRAIL_SEARCHED: "Entry records searched",
    CommunityKind.INACTIVITY_ALERT: "Resident in care not seen",
    CommunityKind.CARE_SET: "Care watch changed",
    CommunityKind.ZONE_STATE: "Intrusion zone armed or disarmed",
    CommunityKind.ZONE_NOT_ARMED: "Intrusion zone could not arm",
}, bodies={
    CommunityKind.SMOKE_ALARM: SmokeBody,
    CommunityKind.SMOKE_CLEARED: DetectorBody,
    CommunityKind.PANIC_ALARM: PanicBody,
    CommunityKind.INTRUSION_ALARM: IntrusionBody,
    CommunityKind.DETECTOR_TROUBLE: DetectorTroubleBody,
    CommunityKind.DETECTOR_TROUBLE_CLEARED: DetectorTroubleBody,
    CommunityKind.INACTIVITY_ALERT: InactivityBody,
    CommunityKind.NOTIFICATION_UNDELIVERED: UndeliveredBody,
})
