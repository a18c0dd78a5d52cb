"""A lift's emergency phone, as a feature written against edge/feature.py alone (a test's feature)."""
