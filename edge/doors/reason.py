"""Why a door said yes or no: one enum member per outcome, journaled with every decision."""

from enum import StrEnum


class Reason(StrEnum):
    """The reason for an access decision; the value is what the journal stores."""

    granted = "granted"
    unknown_card = "unknown_card"
    not_yet_valid = "not_yet_valid"
    lease_expired = "lease_expired"
    rent_unpaid = "rent_unpaid"
    suspended = "suspended"
    revoked = "revoked"
    flagged = "flagged"
    outside_schedule = "outside_schedule"
    door_not_allowed = "door_not_allowed"
    pin_required = "pin_required"
    pin_wrong = "pin_wrong"
    pin_locked_out = "pin_locked_out"  # too many wrong PINs lately: not checked until the lockout ends
    clock_untrusted = "clock_untrusted"
    fire_release = "fire_release"
