"""The access decision: one pure function from (card, door, time) to yes or no and why.

Checks run in this order; the first that fails decides:

1. fire release: a released door is open to everyone, card or none (`fire_release`,
   granted; a flagged card still raises the alarm, because it is reported at once).
2. the card is known (`unknown_card`).
3. the person's standing: `flagged` (alarm) before `revoked` and `suspended`, so a
   flagged identity is always reported, whatever else is wrong.
4. the door is allowed, by door name or door group (`door_not_allowed`). This and the
   checks above do not depend on the date, so a bad clock does not hide them.
5. trusted time exists (`clock_untrusted`): everything below depends on the date.
6. the lease window, valid_from..valid_until inclusive, as local dates in the building's
   zone (`not_yet_valid`, `lease_expired`).
7. rent paid_through, inclusive through the end of that local day (`rent_unpaid`).
8. the weekly schedule in local wall-clock time (`outside_schedule`).
9. PIN at a card+PIN reader (`pin_required`, `pin_wrong`), last because it is the only
   slow check (scrypt, tens of ms) and the only one that needs the person's input;
   every other path costs a few microseconds. While the card or reader is locked out
   after wrong PINs (`pin_locked_out`) the PIN is not checked at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.doors.clock import TrustedTime
from edge.doors.credentials.credential import Credential, CredentialStatus
from edge.doors.policy import DoorPolicy, DoorState
from edge.doors.reason import Reason


@dataclass(frozen=True, slots=True)
class Decision:
    """Open or not, why, and whether to raise an alarm now."""

    granted: bool
    reason: Reason
    alarm: bool = False


_GRANTED = Decision(True, Reason.granted)
_FIRE_RELEASE = Decision(True, Reason.fire_release)
_FIRE_RELEASE_FLAGGED = Decision(True, Reason.fire_release, alarm=True)
_DENIED = {reason: Decision(False, reason) for reason in Reason}
_FLAGGED = Decision(False, Reason.flagged, alarm=True)
_STANDING = {
    CredentialStatus.revoked: _DENIED[Reason.revoked],
    CredentialStatus.suspended: _DENIED[Reason.suspended],
}


def decide(
    credential: Credential | None,
    door: DoorPolicy,
    reader: str,
    now: TrustedTime,
    door_state: DoorState,
    pin: str | None = None,
    pin_locked_out: bool = False,
) -> Decision:
    """Decide one card read at `reader` of `door`. Pure: no I/O, time comes in `now`."""
    if door_state is DoorState.fire_released:
        if credential is not None and credential.status is CredentialStatus.flagged:
            return _FIRE_RELEASE_FLAGGED
        return _FIRE_RELEASE
    if credential is None:
        return _DENIED[Reason.unknown_card]
    status = credential.status
    if status is CredentialStatus.flagged:
        return _FLAGGED
    if status is not CredentialStatus.active:
        return _STANDING[status]
    if door.name not in credential.doors and credential.door_groups.isdisjoint(door.groups):
        return _DENIED[Reason.door_not_allowed]
    if now.instant is None:
        return _DENIED[Reason.clock_untrusted]
    local = now.instant.astimezone(door.zone)
    today = local.date()
    if today < credential.valid_from:
        return _DENIED[Reason.not_yet_valid]
    if today > credential.valid_until:
        return _DENIED[Reason.lease_expired]
    if today > credential.paid_through:
        return _DENIED[Reason.rent_unpaid]
    if credential.schedule is not None and not credential.schedule.allows(local):
        return _DENIED[Reason.outside_schedule]
    if reader in door.pin_readers:
        if pin is None or credential.pin_hash is None:
            return _DENIED[Reason.pin_required]
        if pin_locked_out:
            return _DENIED[Reason.pin_locked_out]
        if not credential.pin_hash.matches(pin):
            return _DENIED[Reason.pin_wrong]
    return _GRANTED
