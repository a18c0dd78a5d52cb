from enum import StrEnum

from edge.events import Kinds


class LiftPhoneKind(StrEnum):
    OFF_HOOK = "alarm.lift_phone_off_hook"
    HUNG_UP = "lift_phone.hung_up"


KINDS = Kinds("lift_phone", LiftPhoneKind, {
    LiftPhoneKind.OFF_HOOK: "Lift emergency phone off the hook",
    LiftPhoneKind.HUNG_UP: "Lift emergency phone hung up",
})
