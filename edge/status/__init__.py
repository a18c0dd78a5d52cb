"""The building seen from outside the daemon: health, metrics, the live page, `edge status` and `edge doctor`.

Everything here reads; nothing acts on hardware. The daemon's view comes from the journal
(`view.BuildingView`), so the same code answers with the daemon up (over HTTP) or down.
"""
