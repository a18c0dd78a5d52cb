from enum import StrEnum

from edge.feature import Feature, Stage

FEATURE = Feature(
    "lift_phone", order=80, settings="edge.lift_phone.settings", kinds="edge.lift_phone.kinds",
    conditions="edge.lift_phone.conditions", wiring="edge.lift_phone.wiring", wanted=lambda config: bool(config.lift_phones),
    stage=Stage.LATER, commands=("edge.lift_phone.cli",), tiles="edge.lift_phone.tiles",
)


class LiftPhoneOp(StrEnum):
    """Its operations, named once: wiring.py serves them, cli.py asks for them."""

    HANG_UP = "lift_phone.hang_up"
