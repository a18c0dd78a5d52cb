"""A tenant's card credential: the record the door checks, keyed by a hash of the card.

One record per card. The `key` is HMAC-SHA256(building secret, card serial) in hex, so
the record never holds the card number; the same goes for `id_key` and the tenant's ID
number. Dates are days in the building's time zone and are inclusive: a lease
`valid_until` 2025-02-28 and rent `paid_through` 2025-02-28 both open the door until
the end of 28 February local time.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from edge.doors.credentials.pin import PinHash
from edge.doors.schedule import WeeklySchedule
from edge.config.settings import Strict

HexKey = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class CredentialStatus(StrEnum):
    """Standing of a credential, set by the building manager (or the cloud)."""

    active = "active"
    suspended = "suspended"  # temporarily off, e.g. card reported lost
    revoked = "revoked"  # permanently off
    flagged = "flagged"  # identity flagged: deny and raise an alarm at once


def _parse_as(kind: type) -> Any:
    def parse(value: object) -> object:
        return kind.parse(value) if isinstance(value, str) else value

    return BeforeValidator(parse)


Schedule = Annotated[WeeklySchedule, _parse_as(WeeklySchedule), PlainSerializer(str, return_type=str)]
StoredPin = Annotated[PinHash, _parse_as(PinHash), PlainSerializer(str, return_type=str)]
Names = Annotated[
    frozenset[Annotated[str, Field(min_length=1)]],
    PlainSerializer(sorted, return_type=list[str]),
]


class Tenancy(Strict):
    """Who holds a card, where and when it opens: the part a building manager writes."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    tenant: str = Field(min_length=1, description="opaque tenant id from the management system")
    status: CredentialStatus = CredentialStatus.active
    doors: Names = frozenset()
    door_groups: Names = frozenset()
    valid_from: date = Field(description="first day of the lease, local, inclusive")
    valid_until: date = Field(description="last day of the lease, local, inclusive")
    paid_through: date = Field(description="last day covered by rent paid, local, inclusive")
    schedule: Schedule | None = None

    @model_validator(mode="after")
    def _lease_in_order(self) -> Tenancy:
        if self.valid_until < self.valid_from:
            raise ValueError(f"valid_until {self.valid_until} is before valid_from {self.valid_from}")
        return self


class Credential(Tenancy):
    """Everything the door needs to know about one card, and nothing that names the card."""

    key: HexKey = Field(description="HMAC-SHA256(building secret, card serial), hex")
    pin_hash: StoredPin | None = None
    id_key: HexKey | None = Field(default=None, description="HMAC of the tenant's ID number")
    id_last4: str | None = Field(default=None, pattern=r"^[0-9A-Za-z]{4}$")
