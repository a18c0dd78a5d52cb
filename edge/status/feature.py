"""The building's status: health, metrics and the page; `edge status`, `edge doctor`."""

from edge.feature import Feature, Stage

FEATURE = Feature(
    "status", order=70, settings="edge.status.settings", wiring="edge.status.wiring",
    wanted=lambda config: config.http.enabled, stage=Stage.LATER, commands=("edge.status.cli",),
)
