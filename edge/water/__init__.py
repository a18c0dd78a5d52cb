"""Fire-water points: hydrant riser pressures and tank levels on 4-20 mA loops. Its config section
lives here (`settings.py`); the monitors still run in edge/field.py and edge/safety/, which move
here next.
"""
