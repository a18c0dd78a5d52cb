"""USB adapters and cameras by identity, followed through unplug and re-plug (pyudev).

A cabinet's USB-RS485 adapters get renumbered: /dev/ttyUSB0 becomes /dev/ttyUSB1 and a
Modbus bus would talk to the wrong devices. The config names such a device by udev
properties (`udev:` section) and its port as `udev:NAME`; the daemon opens
STATE_DIR/dev/NAME, a symlink this module keeps pointing at whatever node the matching
device has now. On removal the link goes (the driver's next read fails and the supervisor
journals and retries it); on arrival it points at the new node and the workers whose ports
name the identity are woken (`Supervisor.wake`: they restart at once and open it, instead of
waiting out a backoff of up to a minute). Two devices that match one identity are a config
error at start and a fault at run time, never a guess. A flapping adapter is debounced: the
first removal and arrival of a burst are journaled (and only that arrival wakes the workers),
the rest are counted into one event when the burst's window ends (and the drivers restart at
the supervisor's backoff, not at the connector's pace). Devices the config does not know are
ignored.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable, Protocol

import structlog

from edge.runtime import pools
from edge.config.building import BuildingConfig, ConfigError, ConfigProblem, SerialBus, every_plugged
from edge.config.settings import UsbIdentity
from edge.events import Event, Kind, Priority
from edge.journal import Journal
from edge.runtime.pools import Pool
from edge.runtime.throttle import Throttle

log = structlog.get_logger("edge.hotplug")

PROPERTY = {"vendor_id": "ID_VENDOR_ID", "product_id": "ID_MODEL_ID", "serial": "ID_SERIAL_SHORT", "usb_path": "ID_PATH"}
FLAP_WINDOW_S = 10.0
MAX_PENDING = 256
PREFIX = "udev:"


class UdevDevice(Protocol):
    """What we use of a pyudev.Device (tests feed objects of this shape)."""

    action: str | None
    device_node: str | None
    subsystem: str
    properties: Mapping[str, str]


def matches(identity: UsbIdentity, device: UdevDevice) -> bool:
    if device.subsystem != identity.subsystem or not device.device_node:
        return False
    for field, key in PROPERTY.items():
        wanted = getattr(identity, field)
        if wanted is not None and str(device.properties.get(key, "")).lower() != wanted.lower():
            return False
    return True


def links_dir(config: BuildingConfig) -> Path:
    return config.state_path / "dev"


def with_stable_ports(config: BuildingConfig) -> BuildingConfig:
    """The config with every `udev:NAME` port replaced by the link the daemon keeps for NAME."""
    if not config.udev:
        return config
    directory = links_dir(config)

    def port(value: str) -> str:
        return str(directory / value.removeprefix(PREFIX)) if value.startswith(PREFIX) else value

    update: dict[str, list] = {"buses": [b.model_copy(update={"port": port(b.port)}) if isinstance(b, SerialBus) else b for b in config.buses]}
    for plugged in every_plugged(config):  # each feature's readers, cameras...
        section = update.setdefault(plugged.section, list(getattr(config, plugged.section)))
        section[plugged.index] = plugged.item.model_copy(update={plugged.field: port(plugged.port)})
    return config.model_copy(update=update)


def workers_by_identity(config: BuildingConfig) -> dict[str, set[str]]:
    """The supervised workers that open each identity's link (named as the gateway starts them):
    the field bus for a serial bus; for a feature's device, the worker its `Plugged` names
    (`reader:NAME` or `osdp:PORT` for a reader, `camera:NAME`)."""
    directory = links_dir(config)
    users: dict[str, set[str]] = {}

    def use(port: str, worker: str) -> None:
        if port.startswith(PREFIX):
            users.setdefault(port.removeprefix(PREFIX), set()).add(worker)

    for bus in config.buses:
        if isinstance(bus, SerialBus):
            use(bus.port, "fieldbus")
    for plugged in every_plugged(config):
        use(plugged.port, plugged.worker(directory))
    return users


class Hotplug:
    """Keeps one link per identity pointing at its device, and journals what happens to it."""

    def __init__(self, identities: Iterable[UsbIdentity], directory: Path, journal: Journal | None = None,
                 flap_window_s: float = FLAP_WINDOW_S, clock=time.monotonic, on_arrival: Callable[[str], None] | None = None) -> None:
        self.identities = list(identities)
        self.directory = directory
        self.journal = journal
        self.on_arrival = on_arrival  # called with an identity's name once its link points at the arrived device
        self.clock = clock
        self.present: dict[str, str] = {}  # identity name -> the node its link points at
        self.rivals: dict[str, set[str]] = {}  # identity name -> other nodes that match it too
        self.bursts = Throttle(window_s=flap_window_s, max_keys=max(2, 2 * len(self.identities)))
        self.ambiguity = Throttle(window_s=60.0, max_keys=max(1, len(self.identities)))
        self._pending: deque[tuple[str, str | None, Event | None]] = deque()  # (name, node or None, event)
        self._wake = asyncio.Event()
        self.dropped = 0

    # --- at start ------------------------------------------------------------------

    def resolve(self, devices: Iterable[UdevDevice]) -> None:
        """Find every identity among the devices present; raises ConfigError when one matches twice."""
        found: dict[str, list[str]] = {i.name: [] for i in self.identities}
        for device in devices:
            for identity in self.identities:
                if matches(identity, device):
                    found[identity.name].append(str(device.device_node))
        twice = [(name, nodes) for name, nodes in found.items() if len(nodes) > 1]
        if twice:
            raise ConfigError([ConfigProblem("(udev)", 0, 0, f"udev.{name}", f"matches {len(nodes)} devices ({', '.join(sorted(nodes))}): "
                                             "add serial or usb_path so it names exactly one") for name, nodes in twice])
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, nodes in found.items():
            self.present.pop(name, None)
            if nodes:
                self.present[name] = nodes[0]
            _relink(self.directory / name, nodes[0] if nodes else None)
            if not nodes:
                self._queue(name, None, Event(Kind.HOTPLUG_REMOVED, Priority.FAULT, name, {"identity": name, "at": "start", "detail": "not plugged in"}))

    # --- events --------------------------------------------------------------------

    def observe(self, device: UdevDevice) -> None:
        """One udev event, on the loop; must not block (links change in the journaling task)."""
        if device.action not in ("add", "remove"):
            return
        node = str(device.device_node)
        hits = [i for i in self.identities if matches(i, device)] if device.action == "add" else \
            [i for i in self.identities if self.present.get(i.name) == node or node in self.rivals.get(i.name, ())]
        if not hits:
            log.debug("udev event for a device the config does not name", action=device.action, node=node)
            return
        for identity in hits:
            if device.action == "add":
                self._arrived(identity.name, node)
            else:
                self._removed(identity.name, node)

    def _arrived(self, name: str, node: str) -> None:
        current = self.present.get(name)
        if current == node:
            return
        if current is not None:  # a second device matches: keep the one we have, say so (once a minute at most)
            self.rivals.setdefault(name, set()).add(node)
            if self.ambiguity.offer(name, self.clock()) is None:
                return
            self._queue(name, current, Event(Kind.HOTPLUG_AMBIGUOUS, Priority.FAULT, name, {
                "identity": name, "node": current, "also": sorted(self.rivals[name]),
                "detail": "a second device matches this identity; it is ignored until the config names exactly one"}))
            return
        self.present[name] = node
        self._changed(name, node, Event(Kind.HOTPLUG_ARRIVED, Priority.FAULT, name, {"identity": name, "node": node}))

    def _removed(self, name: str, node: str) -> None:
        rivals = self.rivals.get(name, set())
        if node in rivals:
            rivals.discard(node)
            return
        self.present.pop(name, None)
        if len(rivals) == 1:  # the other one is now the only match
            successor = rivals.pop()
            self.present[name] = successor
            self._changed(name, successor, Event(Kind.HOTPLUG_ARRIVED, Priority.FAULT, name, {"identity": name, "node": successor}))
            return
        self._changed(name, None, Event(Kind.HOTPLUG_REMOVED, Priority.FAULT, name, {"identity": name, "node": node}))

    def _changed(self, name: str, node: str | None, event: Event) -> None:
        """The link always follows; the journal hears the first removal and arrival of a burst, then a count."""
        if self.bursts.offer((name, str(event.kind)), self.clock()) is None:
            event = None
        self._queue(name, node, event)

    def _queue(self, name: str, node: str | None, event: Event | None) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1  # a storm of events for our own few identities: the link is fixed by the next one
            self._pending.popleft()
        self._pending.append((name, node, event))
        self._wake.set()

    def flapping(self, now: float) -> list[Event]:
        """Changes held back by bursts whose window ended: one event per flapping device."""
        held: dict[str, int] = {}
        for (name, _), count in self.bursts.flush(now):
            held[name] = held.get(name, 0) + count
        return [Event(Kind.HOTPLUG_FLAPPING, Priority.FAULT, name, {
                    "identity": name, "changes": count, "node": self.present.get(name), "window_s": self.bursts.window_s})
                for name, count in sorted(held.items())]

    # --- the worker ------------------------------------------------------------------

    async def apply(self) -> None:
        """Change links and journal what is queued (links in a thread: a file system may stall)."""
        while self._pending:
            name, node, event = self._pending.popleft()
            await pools.call(Pool.DEVICES, _relink, self.directory / name, node)
            if event is not None and event.kind is Kind.HOTPLUG_ARRIVED and self.on_arrival is not None:
                self.on_arrival(name)  # the link is in place: its drivers may open it now
            if event is not None:
                log.warning(str(event.kind), event_id=event.id, **event.body)
                if self.journal is not None:
                    await self.journal.append(event)
        for event in self.flapping(self.clock()):
            log.warning(str(event.kind), event_id=event.id, **event.body)
            if self.journal is not None:
                await self.journal.append(event)

    async def run(self, monitor: Any = None) -> None:
        """Follow udev until cancelled. `monitor` is a pyudev.Monitor (made here when not given)."""
        loop = asyncio.get_running_loop()
        if monitor is None:
            monitor = _netlink_monitor({i.subsystem for i in self.identities})
        if monitor is not None:
            monitor.start()
            loop.add_reader(monitor.fileno(), self._readable, monitor)
        try:
            while True:
                await self.apply()
                self._wake.clear()
                try:
                    async with asyncio.timeout(self.bursts.window_s / 2):  # a burst's count is released when it ends
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            if monitor is not None:
                loop.remove_reader(monitor.fileno())

    def _readable(self, monitor: Any) -> None:
        while (device := monitor.poll(timeout=0)) is not None:
            self.observe(device)


def _netlink_monitor(subsystems: set[str]) -> Any:
    """pyudev's netlink monitor, or None where there is no udev (a container): hotplug is then off."""
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        for subsystem in sorted(subsystems):
            monitor.filter_by(subsystem)
        return monitor
    except Exception as missing:  # noqa: BLE001 - pyudev raises OSError, ImportError or its own errors
        log.warning("no udev here: devices are not followed through re-plugging", error=str(missing))
        return None


def present_devices(subsystems: set[str]) -> list[Any]:
    """Devices udev knows now, for `Hotplug.resolve` at start (empty where there is no udev)."""
    try:
        import pyudev

        context = pyudev.Context()
        return [d for s in sorted(subsystems) for d in context.list_devices(subsystem=s)]
    except Exception as missing:  # noqa: BLE001
        log.warning("cannot list udev devices", error=str(missing))
        return []


def _relink(link: Path, node: str | None) -> None:
    """Point `link` at `node` atomically (rename over it), or remove it."""
    if node is None:
        link.unlink(missing_ok=True)
        return
    temporary = link.with_name(f".{link.name}.new")
    temporary.unlink(missing_ok=True)
    os.symlink(node, temporary)
    os.replace(temporary, link)


GROUP = {"tty": "dialout", "video4linux": "video"}


def udev_rules(config: BuildingConfig) -> str:
    """udev rules that give each identity of the config a stable /dev/edge/NAME, in the service's group."""
    lines = [f"# Stable names for building {config.building.id}'s USB adapters and cameras, from `edge udev-rules`.",
             "# Install: sudo install -m 0644 THIS /etc/udev/rules.d/99-edge.rules && sudo udevadm control --reload && sudo udevadm trigger",
             "# Find a device's properties with: udevadm info --query=property --name=/dev/ttyUSB0"]
    for identity in config.udev:
        match = [f'SUBSYSTEM=="{identity.subsystem}"']
        match += [f'ENV{{{key}}}=="{getattr(identity, field)}"' for field, key in PROPERTY.items() if getattr(identity, field) is not None]
        lines.append(", ".join([*match, f'SYMLINK+="edge/{identity.name}"', f'GROUP="{GROUP[identity.subsystem]}"', 'MODE="0660"']))
    if not config.udev:
        lines.append("# (this config names no device by udev identity: see the udev: section in the README)")
    return "\n".join(lines)


def assemble_hotplug(config: BuildingConfig, journal: Journal, on_arrival: Callable[[str], None] | None = None) -> Hotplug:
    """Resolve every identity among the devices present now (ConfigError when one matches twice)."""
    hotplug = Hotplug(config.udev, links_dir(config), journal, on_arrival=on_arrival)
    hotplug.resolve(present_devices({i.subsystem for i in config.udev}))
    return hotplug
