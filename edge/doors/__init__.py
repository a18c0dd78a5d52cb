"""Doors at run time: readers in, decisions journaled, locks pulsed, contacts watched.

`machine` is the pure door state machine (contact, exit button, grants, alarms);
`lock` drives one door's relay through the field bus; `access` is the daemon's access
path that ties readers, the credential store, the clock guard, locks and the journal
together; `readers` runs each card reader (serial or OSDP) into the access path's inbox;
`fire` releases the egress doors on a fire alarm and keeps the latch until a reset. Fail-safe or fail-secure is a property of the lock hardware, not of this code:
a fail-safe strike (egress doors) opens when it loses power, a fail-secure one stays
locked; the profile's release/secure commands say which relay state is "released".

Who may open which door is decided locally and offline, in the order a card read flows:
`credentials.store.CredentialStore` turns a card serial into a `Credential` (from memory),
`clock.ClockGuard` turns the wall clock into a `TrustedTime`, and `decision.decide` turns both,
with the door's `policy.DoorPolicy` and its `schedule`, into a `Decision` with a `reason.Reason`.
"""
