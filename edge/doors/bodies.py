"""Typed bodies of the doors' kinds (edge/doors/kinds.py): the fields each emitter writes, for the fleet
contract's schema and the tests that hold the emitters to them. Named by its `Kinds` and imported
only by what reads bodies (the contract, the ingest, the tests): never on the gateway's start or
hot path, where no event is built through a model."""

from __future__ import annotations

from pydantic import Field

from edge.doors.kinds import DoorKind
from edge.doors.reason import Reason
from edge.drivers.cards.observations import FaultReason
from edge.events.bodies import Body


class DecisionBody(Body):
    """A card at a door (edge/doors/access.py): decided, the lock started, then journaled."""

    door: str
    reader: str
    reason: str = Field(description=f"Why: {', '.join(Reason)} (a newer gateway may add more).")
    granted: bool
    credential: str | None = Field(description="The credential's key, cut to its first 12 characters (never the card's "
                                               "number); null for a card the store does not know.")
    frame_to_decision_ms: float = Field(description="From the reader's frame to the decision, in milliseconds.")
    store: str | None = Field(None, description="`unavailable` when decided without a card list (only fire release opens).")


class DoorBody(Body):
    """A door's own state changed (forced, held open, closed) or its exit button was pressed."""

    door: str


class FlaggedBody(Body):
    """A flagged card was used at a door (its decision is the access.decision beside it)."""

    door: str
    credential: str = Field(description="The credential's key, first 12 characters.")


class RemoteUnlockBody(Body):
    """One unlock pulse asked by a technician or a signed cloud command (`door.unlock`), audited."""

    door: str
    operator: str
    reason: str = Field(max_length=500)
    confirmed: bool = Field(description="The lock relay confirmed the pulse (always true while fire releases the doors).")


class LockUnconfirmedBody(Body):
    """A lock relay write the module did not confirm."""

    door: str
    command: str


class ReaderHealthBody(Body):
    """A card reader stopped working, or works again, for one reason (edge/doors/access.py)."""

    reason: str = Field(description=f"Why: {', '.join(r.value for r in FaultReason)}; restored names the reason that cleared.")
    detail: str = Field(max_length=200)
    suppressed: int | None = Field(None, description="Changes held back by the rate limit before this one.")


class PinLockoutBody(Body):
    """Too many wrong PINs: one credential locked everywhere, or one reader for every card."""

    door: str
    scope: str = Field(description="credential or reader: which of the two fields below is given.")
    credential: str | None = Field(None, description="scope credential: the credential's key, first 12 characters.")
    reader: str | None = Field(None, description="scope reader: the reader.")
    attempts: int = Field(description="Wrong PINs that started it.")
    lockout_s: float = Field(description="How long it lasts, in seconds.")


class FireReleaseBody(Body):
    """The egress doors released for a fire (edge/doors/fire.py), after the relay writes."""

    source: str = Field(description="What released them: a fire input's point (DEVICE.POINT) or smoke:DETECTOR; "
                                    "restored: the latch's (unknown when it was unreadable).")
    doors: list[str] = Field(description="Every door with a lock.")
    unconfirmed: list[str] = Field(description="Doors or DEVICE:COMMAND block releases whose write was not confirmed.")
    released_in_ms: float
    restored: bool | None = Field(None, description="True: latched before a restart and not reset since.")
    latch_saved: bool | None = Field(None, description="A new release: whether its latch reached the state dir.")


class FireResetBody(Body):
    """A technician ended the release: the egress doors lock again."""

    operator: str
    unconfirmed: list[str] = Field(description="Doors whose secure write was not confirmed.")


class FireResetRefusedBody(Body):
    """A reset refused while a fire input reads active, stale or not at all: the doors stay released."""

    operator: str
    inputs: list[str] = Field(description="Why, per fire input that holds the release.")


BODIES = {
    DoorKind.ACCESS_DECISION: DecisionBody,
    DoorKind.ACCESS_FLAGGED: FlaggedBody,
    DoorKind.DOOR_EXIT: DoorBody,
    DoorKind.DOOR_REMOTE_UNLOCK: RemoteUnlockBody,
    DoorKind.DOOR_FORCED: DoorBody,
    DoorKind.DOOR_HELD_OPEN: DoorBody,
    DoorKind.DOOR_CLOSED: DoorBody,
    DoorKind.LOCK_UNCONFIRMED: LockUnconfirmedBody,
    DoorKind.READER_FAULT: ReaderHealthBody,
    DoorKind.READER_RESTORED: ReaderHealthBody,
    DoorKind.FIRE_RELEASE: FireReleaseBody,
    DoorKind.FIRE_RESET: FireResetBody,
    DoorKind.FIRE_RESET_REFUSED: FireResetRefusedBody,
    DoorKind.PIN_LOCKOUT: PinLockoutBody,
}
