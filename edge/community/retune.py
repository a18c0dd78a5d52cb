"""Community safety in a reload: contacts, routes and SMS rates in place (the notifier's routing
table and cap, the inactivity watch's contacts). Detectors, inputs, zones, charging areas, buttons or
the modem are wired into the field bus at start: a change of them asks for a restart."""

from __future__ import annotations

from edge.community.wiring import Community
from edge.reload import Change, Plan, Retuner

SECTIONS = frozenset({"community"})
SETTINGS = frozenset({"contacts", "routes", "sms_per_hour", "cloud_confirm_s", "inactivity_check_s"})  # in place


def retuner(community: Community) -> Retuner:
    return Retuner(SECTIONS, lambda change: plan(community, change))


def plan(community: Community, change: Change) -> Plan:
    old, new = change.old.community, change.new.community
    notifier = community.notifier
    moved = [name for name in type(new).model_fields if getattr(old, name) != getattr(new, name) and name not in SETTINGS]
    if notifier is None or moved or not new.active:
        return Plan(restart=[f"community: {', '.join(moved) or 'its notifier'} changed"])

    async def apply() -> list[str]:
        settings = change.running.community
        notifier.retune(settings)
        if community.inactivity is not None:
            community.inactivity.contacts = {c.name for c in settings.contacts}
            community.inactivity.check_s = settings.inactivity_check_s
        return ["community contacts, routes and rates: in place"]

    return Plan(steps=[apply])
