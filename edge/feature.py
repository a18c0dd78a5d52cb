"""What a feature of the building is to the gateway: the one protocol a feature implements.

Like a Home Assistant integration, each feature lives in its own package (edge/doors/,
edge/power/, edge/water/, edge/community/, edge/vision/, edge/uplink/, edge/status/) and
declares itself there in `feature.py` as one `Feature`. Whatever must know every feature finds
them (`edge.features`): the building config composes their sections and runs their checks, the
event registry takes their kinds, the active conditions their rules, the gateway their wiring,
the `edge` command their commands, the page their tiles. A new feature adds its own package and touches no other
feature's and no shared enum.

Each part is named by its module and imported only where it is used, so declaring a feature
costs nothing: a one-door building's daemon never imports the camera's or the page's modules
(docs/performance.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig
    from edge.fieldbus.devices import FieldBus
    from edge.journal import Journal
    from edge.power.points import FieldPoints
    from edge.reload import Retuner
    from edge.runtime.supervisor import Work

Operation = Callable[[dict], Awaitable[dict]]
"""A request from the control socket or the cloud, answered as a dict."""


class Stage(IntEnum):
    """When the gateway wires a feature: what decides doors and safety first; what imports slowly
    (aiohttp, paho, OpenCV) after, its modules loaded on a thread while doors already decide."""

    FIRST = 1
    LATER = 2


@dataclass(frozen=True)
class Feature:
    """One feature, as the rest of the gateway meets it. Every module named here is optional;
    `order` places it among the others (the config's sections, the wiring, the commands)."""

    name: str
    order: int
    settings: str | None = None  # SECTIONS {name: (annotation, Field)} in the building config, and check(config, refs)
    kinds: str | None = None  # KINDS: its event kinds (edge.events.Kinds)
    conditions: str | None = None  # CONDITIONS: what it holds active (edge.conditions.Rule)
    wiring: str | None = None  # wire(site) -> Wired: its running parts, when `wanted` by the config; and optionally
    # prepare(config), blocking, run on a thread while the journal opens (FIRST stage only)
    wanted: Callable[[BuildingConfig], bool] = lambda config: False
    stage: Stage = Stage.FIRST
    commands: tuple[str, ...] = ()  # each has add_commands(subparsers) for the `edge` command
    tiles: str | None = None  # Tiles(config): its part of the page and `edge status`, folded from the journal (edge/tiles.py)

    def module(self, name: str) -> ModuleType:
        """One of its parts, imported now."""
        dotted = getattr(self, name)
        assert dotted, f"feature {self.name} has no {name}"
        return importlib.import_module(dotted)


@dataclass
class Wired:
    """What a feature's wiring gives the gateway: its part (others may look it up by the
    feature's name), its long-running work, the operations it serves on the control socket and
    to the cloud, its answer to a reload, and what it closes after its work has stopped."""

    part: Any
    work: dict[str, Work] = field(default_factory=dict)
    control: dict[str, Operation] = field(default_factory=dict)
    cloud: dict[str, Operation] = field(default_factory=dict)  # the cloud reaches these otherwise than the socket does
    retuner: Retuner | None = None
    close: Callable[[], None] | None = None  # blocking (state files): run on a thread after the workers stop


@dataclass
class Site:
    """What a feature's wiring is given: the building's shared parts, the parts of the features
    wired before it (by feature name), and the operations they serve so far."""

    config: BuildingConfig
    journal: Journal
    digest: str  # of the running config file
    fieldbus: FieldBus | None
    field: FieldPoints | None
    parts: dict[str, Any]
    control: dict[str, Operation]
    cloud: dict[str, Operation]
    prepared: dict[str, Any]  # by feature name: what its wiring's `prepare(config)` loaded on a thread at start
    gateway: Any  # the daemon itself, for what outlives a wiring: its stop budget, the fleet's config watch, cards loaded at start

    def part(self, feature: str) -> Any:
        """Another feature's part, or None where the building has none (features meet by name, not by import)."""
        return self.parts.get(feature)
