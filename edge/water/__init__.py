"""Fire-water points: hydrant riser pressures and tank levels on 4-20 mA loops. Its config section
lives here (`settings.py`); its points are watched by edge/power/points.py (`FieldPoints`), whose
monitors, telemetry and rows circuits and water points share, with the rules in edge/points/.
"""
