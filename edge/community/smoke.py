"""A smoke detector's status bits, judged: alarm, test, and the troubles that need a technician.

The detector has already decided whether there is smoke; this only turns its bits into
changes worth journaling, once per change. Pure: the bits of one poll go in together
(the wiring collects a poll's readings before judging), findings come out.

Two rules matter for life safety. An alarm bit while the test bit is set is a test, not a
fire (a technician is holding the button). An alarm bit with the fault bit is still an
alarm: the reading is suspect, so it also raises the `alarm_and_fault` trouble, but a
detector that may be broken is never a reason to keep quiet about smoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Finding(StrEnum):
    SMOKE = "smoke"
    SMOKE_CLEARED = "smoke_cleared"
    TROUBLE = "trouble"
    TROUBLE_CLEARED = "trouble_cleared"


class Trouble(StrEnum):
    FAULT = "fault"
    LOW_BATTERY = "low_battery"
    TAMPER = "tamper"
    TEST = "test"  # an alarm bit while the test bit is set
    ALARM_AND_FAULT = "alarm_and_fault"


@dataclass(frozen=True, slots=True)
class Change:
    finding: Finding
    trouble: Trouble | None = None


@dataclass
class DetectorState:
    """What was last concluded from one detector's bits."""

    smoke: bool = False
    troubles: set[Trouble] = field(default_factory=set)

    def judge(self, bits: dict[str, bool | None]) -> list[Change]:
        """One poll's bits (alarm, fault, low_battery, test, tamper; None = unread) to changes.

        An unread bit leaves what it decides alone: a lost poll neither raises nor clears.
        """
        changes: list[Change] = []
        alarm, test, fault = bits.get("alarm"), bits.get("test"), bits.get("fault")
        if alarm is not None and test is not None:
            smoke = alarm and not test
            if smoke != self.smoke:
                self.smoke = smoke
                changes.append(Change(Finding.SMOKE if smoke else Finding.SMOKE_CLEARED))
            changes += self._trouble(Trouble.TEST, alarm and test)
        if alarm is not None and fault is not None:
            changes += self._trouble(Trouble.ALARM_AND_FAULT, alarm and fault)
        for trouble, bit in ((Trouble.FAULT, fault), (Trouble.LOW_BATTERY, bits.get("low_battery")), (Trouble.TAMPER, bits.get("tamper"))):
            if bit is not None:
                changes += self._trouble(trouble, bit)
        return changes

    def _trouble(self, trouble: Trouble, present: bool) -> list[Change]:
        if present == (trouble in self.troubles):
            return []
        if present:
            self.troubles.add(trouble)
            return [Change(Finding.TROUBLE, trouble)]
        self.troubles.discard(trouble)
        return [Change(Finding.TROUBLE_CLEARED, trouble)]
