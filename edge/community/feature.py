"""Community safety: smoke, intrusion and panic inputs, charging areas, who is told, the entry trail."""

from edge.feature import Feature

FEATURE = Feature(
    "community", order=40, settings="edge.community.settings", kinds="edge.community.kinds",
    conditions="edge.community.conditions", wiring="edge.community.wiring", wanted=lambda config: True,
    commands=("edge.community.cli",),
)
