"""The field bus: the building's Modbus lines, polled once and shared, and a technician's hands on them.

`devices` is the service the daemon runs (`FieldBus`: one poller for every RS-485 line, readings to
whoever subscribes, device faults journaled; `DeviceCommands`: any command a profile defines, any
point read now); `cli` is `edge device command|read|show`, which the daemon never imports. Not to be
confused with edge/events/bus.py, the in-process bus of journaled events.
"""

from enum import StrEnum


class DeviceOp(StrEnum):
    """The field bus's operations on the control socket: served by the gateway (devices.py's
    DeviceCommands), asked by cli.py; device.command also as a signed cloud command."""

    COMMAND = "device.command"
    READ = "device.read"
