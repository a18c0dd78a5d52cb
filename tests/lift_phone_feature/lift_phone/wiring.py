from __future__ import annotations

import asyncio

from edge.events import Event, Priority
from edge.feature import Site, Wired
from edge.lift_phone.feature import LiftPhoneOp
from edge.lift_phone.kinds import LiftPhoneKind


def wire(site: Site) -> Wired:
    """Every phone goes off the hook once at start; `lift_phone.hang_up` (socket or cloud) hangs one up."""
    phones = {phone.name for phone in site.config.lift_phones}

    async def ring() -> None:
        for name in sorted(phones):
            await site.journal.append(Event(LiftPhoneKind.OFF_HOOK, Priority.ALARM, name, {"doors_here": site.part("doors") is not None}))
        await asyncio.Event().wait()

    async def hang_up(request: dict) -> dict:
        if request.get("phone") not in phones:
            return {"ok": False, "error": f"no lift phone {request.get('phone')!r}"}
        await site.journal.append(Event(LiftPhoneKind.HUNG_UP, Priority.ALARM, str(request["phone"])))
        return {"ok": True}

    return Wired(phones, {"lift-phones": ring}, control={LiftPhoneOp.HANG_UP: hang_up})
