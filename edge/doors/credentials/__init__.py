"""Tenants' cards: the credential store (`store`: SQLite on disk, a dict in memory), the record a
door checks (`credential`, keyed by a hash of the card), PIN hashes (`pin`) and a building
manager's CSV or JSON-lines enrolments (`card_import`).
"""
