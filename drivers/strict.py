"""The one base of the gateway's strict models: its config (device profiles, the building config,
model manifests, the rig's scenarios) and what else it validates as it comes (a credential, a care
watch, an operator's request).

It lives with the drivers because they are the lowest layer (a device profile is config too, and
the drivers import nothing above them); `edge.config.settings` hands it on to the features.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors (a typo must never silently become a default), and a loaded model
    never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
