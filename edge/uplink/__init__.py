"""The uplink: the journal handed to the cloud over MQTT, and the cloud's signed messages back.

topics    the versioned topic layout (PREFIX/BUILDING/...), one place
mqtt      paho-mqtt behind a small asyncio face: await a PUBACK, read messages from a queue
cursor    the durable sync cursor: what the cloud has acknowledged
pacing    the bandwidth cap on the backlog (a token bucket)
push      store-and-forward: journal -> batches -> QoS 1, alarms first
pull      the cloud's request for a range of the log, answered in pages
signing   the signed downlink envelope: Ed25519, expiry, nonce
replay    the nonces already seen, kept across restarts
downlink  credential change sets and snapshots, commands, pulls: verified, or refused
refusals  refused and dropped downlink messages, journaled once per topic and reason per window
commands  the command table other parts register their handlers into
tasks     the loops of a session run side by side, end together, and stop within a deadline
worker    one connection at a time: connect with backoff, birth message, run the above
"""
