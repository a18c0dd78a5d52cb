"""Circuits: the current, leakage and temperature points of a floor's outgoing circuits and the
breaker that may cut them. Its config section (`settings.py`); the points' monitors and events
(`points.py`, `FieldPoints`, which also watches the water points: same monitors, no breaker); the
breakers' trips, refusals, holds, cuts and re-close (`breakers.py`); the rows of `edge points`
(`snapshot.py`); the alarms a restart carries over (`recheck.py`); its event kinds (`kinds.py`);
`edge points` and `edge breaker close` (`cli.py`). The rules themselves are pure code in edge/points/.
"""
