"""The community safety part of the building, wired from the config by `Gateway.assemble`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as default
from typing import TYPE_CHECKING

from edge.community.feature import CommunityOp
from edge.community.settings import CommunitySafety
from edge.community.trail import TrailSearch
from edge.config.building import BuildingConfig
from edge.runtime.control import Handler
from edge.feature import Site, Wired
from edge.journal import Journal
from edge.runtime.supervisor import Work

if TYPE_CHECKING:
    from edge.community.alarms import AlarmInputs
    from edge.community.inactivity import InactivityWatch
    from edge.community.notifier import Notifier
    from edge.fieldbus.devices import FieldBus
    from edge.doors.fire import FireRelease
    from edge.power.points import FieldPoints
    from edge.doors.wiring import Doors
    from edge.uplink.worker import Uplink


@dataclass
class Community:
    notifier: Notifier | None
    alarms: AlarmInputs | None
    inactivity: InactivityWatch | None = None
    work: dict[str, Work] = default(default_factory=dict)
    control: dict[str, Handler] = default(default_factory=dict)


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


def watch_smoke(settings: CommunitySafety, fieldbus: FieldBus, fire: FireRelease) -> None:
    """A detector that releases the egress doors also holds their reset: while its alarm bit
    reads active (or unknown, like the panel's fire input) the doors stay released."""
    from edge.fieldbus.devices import PointKey
    from edge.doors.fire import STALE_FLOOR_S, STALE_INTERVALS

    for detector in settings.detectors:
        if detector.fire_release:
            key = PointKey(detector.device, "alarm")
            fire.watch(str(key), max(STALE_INTERVALS * fieldbus.interval_of(key), STALE_FLOOR_S),
                       online=lambda device=key.device: fieldbus.is_online(device), label=f"smoke detector {detector.name} ({key})")
            fieldbus.subscribe(key, fire.input_read)


def assemble_community(
    config: BuildingConfig,
    journal: Journal,
    fieldbus: FieldBus | None,
    field: FieldPoints | None,
    doors: Doors | None,
    uplink: Callable[[], Uplink | None],
) -> Community:
    """The entry-trail search always (it reads the journal and the credential store); the
    notifier when there is anything to watch or anyone to tell; alarm inputs on the field bus;
    the inactivity watch where there are doors to pass."""
    settings = config.community

    def credentials():  # a building without doors has no cards to search by tenant
        return doors.access.store if doors is not None else None

    community = Community(None, None, work={}, control={CommunityOp.TRAIL_SEARCH: TrailSearch(journal, credentials)})
    if not settings.active:
        return community
    # A building without alarm inputs or anyone to tell never loads the notifier, the modem or the alarm rules.
    from edge.community.alarms import AlarmInputs
    from edge.community.inactivity import InactivityWatch
    from edge.community.notifier import Notifier
    from edge.community.sms import SmsSender
    from edge.fieldbus.devices import PointKey

    up, took = uplink_views(uplink)
    sms = SmsSender(settings.modem) if settings.modem is not None else None
    notifier = community.notifier = Notifier(
        config.building.id, config.building.timezone, settings, journal, uplink_up=up, cloud_took=took, sms=sms
    )
    community.work["community-notifier"] = notifier.run
    community.control[CommunityOp.ALARM_ACK] = notifier.acknowledge
    if fieldbus is not None and (settings.detectors or settings.inputs):
        fire = doors.fire if doors is not None else None
        alarms = community.alarms = AlarmInputs(
            settings, fieldbus, journal, notifier, power=field, fire_release=fire.trigger if fire is not None else None,
            state_dir=config.state_path, timezone=config.building.timezone,
        )
        if alarms.arming is not None:
            community.control[CommunityOp.ZONE_ARM] = alarms.arming.command
        if fire is not None:
            watch_smoke(settings, fieldbus, fire)
        for button in settings.ack_buttons:
            fieldbus.subscribe(PointKey.parse(button.point), notifier.button(button.area))
        community.work["community-alarms"] = alarms.run
    if doors is not None:
        watch = community.inactivity = InactivityWatch(
            config.state_path, config.building.timezone, journal, notifier, credentials,
            {c.name for c in settings.contacts}, settings.inactivity_check_s,
        )
        community.work["inactivity-watch"] = watch.run
        community.control[CommunityOp.CARE_SET] = watch.set_care
    return community


def wire(site: Site) -> Wired:
    """Community safety as a feature of the building (edge/feature.py); the uplink, wired after
    it, is looked up when a notice would go out."""
    community = assemble_community(site.config, site.journal, site.fieldbus, site.field, site.part("doors"),
                                   lambda: site.part("uplink"))
    retuner = None
    if community.notifier is not None:
        from edge.community import retune

        retuner = retune.retuner(community)
    return Wired(community, community.work, community.control, retuner=retuner)
