"""The `circuits:` section of the building config, and the checks of its references: each point
a circuit names is one its device's profile has, and a circuit that may be cut has a breaker
with the commands to cut and re-close it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from edge.points.power_cut import PowerCutPolicy
from edge.points.settings import CircuitSafety
from edge.config.settings import Name, PointRef, Problem, References, Strict, unique
from edge.points.telemetry import TelemetrySettings

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig


class Circuit(Strict):
    """One outgoing circuit of a floor distribution box, with what may cut it."""

    name: Name
    label: str | None = Field(None, min_length=1, max_length=80, description="What the page and the alarms call it, e.g. 'Floor 1 flats 101-104'; default: circuit NAME, floor, box.")
    floor: int = Field(ge=-10, le=200)
    box: Name
    currents: list[PointRef] = Field(default_factory=list, max_length=3, description="Phase current points.")
    leakage: PointRef | None = Field(None, description="Residual current point, mA.")
    temperatures: list[PointRef] = Field(default_factory=list, description="Cable temperature points.")
    breaker: Name | None = Field(None, description="Smart breaker device with a `trip` command.")
    safety: CircuitSafety
    telemetry: TelemetrySettings | None = Field(None, description="Upstream reporting of every point of the circuit.")


def check(config: BuildingConfig, refs: References) -> list[Problem]:
    problems = unique(("circuits",), config.circuits, "circuit")
    for index, circuit in enumerate(config.circuits):
        for p_index, ref in enumerate(circuit.currents):
            problems += refs.point(ref, ("circuits", index, "currents", p_index))
        problems += refs.point(circuit.leakage, ("circuits", index, "leakage"))
        for p_index, ref in enumerate(circuit.temperatures):
            problems += refs.point(ref, ("circuits", index, "temperatures", p_index))
        if not (circuit.currents or circuit.leakage or circuit.temperatures):
            problems.append((("circuits", index), "a circuit needs at least one current, leakage or temperature point"))
        problems += refs.commands(circuit.breaker, ("trip", "close"), ("circuits", index, "breaker"))
        if circuit.safety.power_cut is PowerCutPolicy.TRIP and circuit.breaker is None:
            problems.append((("circuits", index, "safety", "power_cut"), "power_cut: trip needs a breaker to trip"))
    return problems


SECTIONS = {"circuits": (list[Circuit], Field(default_factory=list))}
"""The building config's sections this feature owns (edge/feature.py)."""
