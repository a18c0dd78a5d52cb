"""Typed bodies of the uplink's kinds (edge/uplink/kinds.py): the fields each emitter writes, for the fleet
contract's schema and the tests that hold the emitters to them. Named by its `Kinds` and imported
only by what reads bodies (the contract, the ingest, the tests): never on the gateway's start or
hot path, where no event is built through a model."""

from __future__ import annotations

from pydantic import Field

from edge.events.bodies import Body
from edge.uplink.kinds import UplinkKind


class LinkBody(Body):
    """Why the link to the broker went down or came up: the broker's or the client's words, cut short
    (a body, not a log line). Typed, so the fleet contract states it and the ingest checks it."""

    detail: str = Field(max_length=300, description="What the connection said, at most 300 characters.")


BODIES = {UplinkKind.UPLINK_DOWN: LinkBody, UplinkKind.UPLINK_UP: LinkBody}
