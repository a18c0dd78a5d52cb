"""Typed bodies of the shared parts' kinds (edge.events.Kind): the fields each emitter writes, for the fleet
contract's schema and the tests that hold the emitters to them. Named by its `Kinds` and imported
only by what reads bodies (the contract, the ingest, the tests): never on the gateway's start or
hot path, where no event is built through a model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edge.events import Kind


class Body(BaseModel):
    """A typed event body: the fields its emitter writes, for the fleet contract's schema and the
    tests that hold the emitters to it. Fields it does not declare are kept (an older or newer
    gateway's body still reads); nothing on the gateway's hot path builds or checks one."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PointConditionBody(Body):
    """A field point's condition raised or cleared (edge/power/points.py for measured points,
    edge/points/device_status.py for a device's own status): the owner is named by the key its kind
    has (`circuit`, `pressure_point` or `device`), beside where it is (floor and box of a circuit, riser
    or tank of a water point). A clear carried across a restart adds `reason`; one held until a
    re-close adds `after`."""

    point: str = Field(description="The point, DEVICE.POINT.")
    quantity: str = Field(description="What it measures: phase_current, leakage_current, cable_temperature, "
                                      "water_pressure, water_level or device_status.")
    condition: str = Field(description="over_threshold, under_threshold, rate_of_change, sensor_fault, stale, status or invalid.")
    severity: str = Field(description="warning or alarm.")
    threshold: float | None = Field(description="The limit crossed, in `unit`; null for a status that matches values.")
    unit: str = Field(description="The unit of reading and threshold: the point's, per second for a rate, mA for a "
                                  "sensor fault, s for staleness, empty for invalid.")
    reading: float | None = Field(None, description="A measured point's reading that crossed it (null when invalid); "
                                                    "absent for a device status.")
    value: bool | int | float | str | None = Field(None, description="A device status: the raw value it read.")
    label: str | None = Field(None, description="A device status: the manual's name for that value.")
    text: str | None = Field(None, description="A device status: what the rule says it means.")
    voided_by: str | None = Field(None, description="Invalid: the point (DEVICE.POINT) whose bit voids the reading.")
    circuit: str | None = Field(None, description="The circuit the point belongs to.")
    pressure_point: str | None = Field(None, description="The water point it is.")
    device: str | None = Field(None, description="The device, for a status on no circuit.")
    floor: int | None = Field(None, description="A circuit's floor.")
    box: str | None = Field(None, description="A circuit's distribution box.")
    riser: str | None = Field(None, description="A water point's riser.")
    tank: str | None = Field(None, description="A water point's tank.")
    reason: str | None = Field(None, description="Cleared for a reason outside the point: condition_gone_across_restart, "
                                                 "source_gone_from_config or another the gateway names.")
    after: str | None = Field(None, description="Cleared late: `reclose` when the zero of a cut circuit waited for its re-close.")


class AlarmEndedBody(Body):
    """An active condition ended for a reason outside its feature (edge/carryover.py)."""

    alarm: str = Field(description="The kind that raised it.")
    key: str = Field(description="Which of that kind's conditions (a door, a circuit, a camera).")
    raised_seq: int = Field(description="The seq of the event that raised it.")
    reason: str = Field(description="Why it ended, e.g. source_gone_from_config.")
    text: str = Field(description="What the page showed for it.")


class PointReadingBody(Body):
    """A point's reading, downsampled by its deadband (edge/power/points.py)."""

    point: str = Field(description="The point, DEVICE.POINT.")
    quantity: str = Field(description="What it measures (as in alarm.raised).")
    value: float | None = Field(description="In `unit`; null while the sensor is faulted (its loop current still in loop_ma).")
    unit: str = Field(description="The point's engineering unit.")
    loop_ma: float | None = Field(None, description="A 4-20 mA point's raw loop current.")


BODIES = {
    Kind.CONDITION_RAISED: PointConditionBody,
    Kind.CONDITION_CLEARED: PointConditionBody,
    Kind.ALARM_ENDED: AlarmEndedBody,
    Kind.POINT_READING: PointReadingBody,
}
