"""Water: hydrant pressure and roof-tank levels, watched in the field points beside circuits."""

from edge.feature import Feature

FEATURE = Feature("water", order=30, settings="edge.water.settings", tiles="edge.water.tiles")
