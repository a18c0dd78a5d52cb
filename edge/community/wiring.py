"""The community safety part of the building, wired from the config by `Gateway.assemble`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.community.alarms import AlarmInputs
from edge.community.notifier import Notifier
from edge.community.sms import SmsSender
from edge.config import BuildingConfig
from edge.control import Handler
from edge.fieldbus import FieldBus, PointKey
from edge.journal import Journal
from edge.supervisor import Work

if TYPE_CHECKING:
    from edge.field import FieldPoints
    from edge.fire import FireRelease
    from edge.uplink.worker import Uplink


@dataclass
class Community:
    notifier: Notifier
    alarms: AlarmInputs
    work: dict[str, Work]
    control: dict[str, Handler]


def uplink_views(uplink: Callable[[], Uplink | None]) -> tuple[Callable[[], bool], Callable[[int], bool]]:
    """Is the uplink connected; has the broker taken the event at `seq`: read from the uplink
    the gateway has (or will have: it is assembled after the control table it serves)."""

    def up() -> bool:
        current = uplink()
        return current is not None and current.connected.is_set()

    def took(seq: int) -> bool:
        current = uplink()
        if current is None:
            return False
        progress = current.pusher.progress
        return seq <= progress.watermark or seq in progress.ahead

    return up, took


def assemble_community(
    config: BuildingConfig,
    journal: Journal,
    fieldbus: FieldBus,
    field: FieldPoints | None,
    fire: FireRelease | None,
    uplink: Callable[[], Uplink | None],
) -> Community:
    settings = config.community
    up, took = uplink_views(uplink)
    sms = SmsSender(settings.modem) if settings.modem is not None else None
    notifier = Notifier(config.building.id, config.building.timezone, settings, journal, uplink_up=up, cloud_took=took, sms=sms)
    alarms = AlarmInputs(settings, fieldbus, journal, notifier, power=field, fire_release=fire.trigger if fire is not None else None)
    for button in settings.ack_buttons:
        fieldbus.subscribe(PointKey.parse(button.point), notifier.button(button.area))
    return Community(
        notifier, alarms,
        work={"community-alarms": alarms.run, "community-notifier": notifier.run},
        control={"alarm.ack": notifier.acknowledge},
    )
