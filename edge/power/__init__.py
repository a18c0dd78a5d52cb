"""Circuits: the current, leakage and temperature points of a floor's outgoing circuits and the
breaker that may cut them. Its config section lives here (`settings.py`); the monitors, the trip
and re-close and the telemetry still run in edge/field.py and edge/safety/, which move here next.
"""
