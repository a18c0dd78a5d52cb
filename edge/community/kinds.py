"""Community safety's event kinds: smoke, intrusion and panic, detectors' trouble, who was told
and how (the SMS path), the care watch, intrusion zones and trail searches, with their words
on the page.

Composed by `edge.events.kinds` (see there); a wire name never changes once journaled.
"""

from __future__ import annotations

from enum import StrEnum

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
}, bodies="edge.community.bodies")
