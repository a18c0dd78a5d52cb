from __future__ import annotations

from typing import Any

from edge.lift_phone.kinds import LiftPhoneKind


class Tiles:
    def __init__(self, config) -> None:
        self.phones: dict[str, bool] = {phone.name: False for phone in config.lift_phones}

    def keep(self, older: Tiles) -> None:
        self.phones = {name: older.phones.get(name, off) for name, off in self.phones.items()}

    def apply(self, event, at: float) -> None:
        if event.kind in (LiftPhoneKind.OFF_HOOK, LiftPhoneKind.HUNG_UP) and event.source in self.phones:
            self.phones[event.source] = event.kind == LiftPhoneKind.OFF_HOOK

    def snapshot(self, now: float, view) -> dict[str, Any]:
        return {"lift_phones": [{"name": name, "off_hook": off} for name, off in self.phones.items()]}
