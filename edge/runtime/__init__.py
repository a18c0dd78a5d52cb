"""The runtime the features run on: what every feature needs and none owns.

The supervisor that restarts a failed part with backoff (`supervisor`), the stop budget shared
across the way out (`deadline`, `shutdown`), the named executors that keep blocking work off the
loop (`pools`), task groups that end within a deadline (`tasks`), the owner-only control socket
(`control`), the throttle for floods of one kind (`throttle`), systemd's notify and watchdog
(`notify`) and the state files a refusing disk degrades without stopping (`state_files`). A
module here knows no feature: doors, power, water, community, vision, uplink and status import
the runtime, never the other way round.
"""
