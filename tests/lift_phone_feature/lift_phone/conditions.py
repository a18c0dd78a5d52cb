from edge.conditions import Rule
from edge.lift_phone.kinds import LiftPhoneKind

CONDITIONS = (Rule(LiftPhoneKind.OFF_HOOK, lambda e: f"Lift phone {e.source} off the hook", ended_by=(LiftPhoneKind.HUNG_UP,)),)
