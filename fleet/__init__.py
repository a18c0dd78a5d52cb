"""The cloud side of the uplink at fleet scale: ingest workers on MQTT 5 shared subscriptions into
PostgreSQL, and the cloud CLI (`edge-fleet`). See docs/fleet.md.

It speaks the gateway's wire protocol (edge/uplink/topics.py, wire.py, signing.py; the contract is
docs/uplink.asyncapi.yaml) and signs downlink messages with the gateway's own signing code.
"""
