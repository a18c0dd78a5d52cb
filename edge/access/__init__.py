"""Door access: who may open which door, decided locally and offline.

The pieces, in the order a card read flows through them:
`credentials.CredentialStore` turns a card serial into a `Credential` (from memory),
`clock.ClockGuard` turns the wall clock into a `TrustedTime`, and `decision.decide`
turns both, with the `DoorPolicy` and `DoorState`, into a `Decision` with a `Reason`.
"""
