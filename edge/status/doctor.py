"""`edge doctor`: checks an installation before it is trusted with a building.

Each check is one function that returns Results: pass or fail, what was found, and for a
failure the exact fix a technician can type. Devices are probed with the gateway's own
Poller (the same code path the daemon uses), unless the daemon runs: then it owns the
ports and the doctor asks it instead of fighting it for them.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import shutil
import socket
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from edge.drivers.modbus.observations import Observation, PollFault, Reading
from edge.drivers.modbus.poller import Poller
from edge.config.building import BuildingConfig, ConfigError, SerialBus, device_profiles, load
from edge.fieldbus.devices import device_specs
from edge.hotplug import PREFIX, matches, present_devices
from edge.status.clock import ntp_synchronised

SERVICE_USER = "edge"
PROBE_S = 5.0
BROKER_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Result:
    check: str
    passed: bool
    found: str
    fix: str = ""

    def __str__(self) -> str:
        """One line per check; a failure's fix on the same line, so `grep FAIL` shows what to do."""
        line = f"{'PASS' if self.passed else 'FAIL'}  {self.check}: {self.found}"
        return line if self.passed else f"{line}; fix: {self.fix}"


def check_config(path: Path) -> tuple[BuildingConfig | None, list[Result]]:
    try:
        config = load(path)
    except ConfigError as error:
        found = "; ".join(str(p) for p in error.problems[:5]) + (" ..." if len(error.problems) > 5 else "")
        return None, [Result("config", False, found, f"edit {path} at the lines named, then run: edge check-config {path}")]
    return config, [Result("config", True, f"{path} is valid")]


def _service_user_may_use(path: str) -> str | None:
    """Why the service user could not open the device node, or None when it can (or there is no such user here)."""
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None  # not installed yet: the current user's access is what we can judge
    info = os.stat(path)
    if info.st_uid == user.pw_uid and info.st_mode & stat.S_IRUSR and info.st_mode & stat.S_IWUSR:
        return None
    group = grp.getgrgid(info.st_gid)
    member = info.st_gid == user.pw_gid or SERVICE_USER in group.gr_mem
    if member and info.st_mode & stat.S_IRGRP and info.st_mode & stat.S_IWGRP:
        return None
    if info.st_mode & stat.S_IROTH and info.st_mode & stat.S_IWOTH:
        return None
    return f"owned by group {group.gr_name} (mode {stat.filemode(info.st_mode)}), and user {SERVICE_USER} may not read and write it"


def check_ports(config: BuildingConfig) -> list[Result]:
    ports = [(f"bus {b.name}", b.port) for b in config.buses if isinstance(b, SerialBus)]
    ports += [(f"reader {r.name}", r.port) for r in config.readers]
    results = []
    identities = {i.name: i for i in config.udev}
    present = present_devices({"tty"}) if any(port.startswith(PREFIX) for _, port in ports) else []
    for owner, port in ports:
        name = f"serial port of {owner}"
        if port.startswith(PREFIX):  # by udev identity: exactly one device must match
            identity = identities[port.removeprefix(PREFIX)]
            nodes = sorted(str(d.device_node) for d in present if matches(identity, d))
            if len(nodes) != 1:
                found = "no device matches" if not nodes else f"{len(nodes)} devices match ({', '.join(nodes)})"
                fix = ("plug the adapter in; compare its properties (udevadm info --query=property --name=/dev/ttyUSB0) with udev."
                       f"{identity.name} in the config") if not nodes else f"add serial or usb_path to udev.{identity.name} so it names exactly one"
                results.append(Result(name, False, f"{port}: {found}", fix))
                continue
            port = nodes[0]
        if not os.path.exists(port):
            bus_devices = [d.name for d in config.devices if owner == f"bus {d.bus}"]
            held = f", so its {len(bus_devices)} device(s) cannot answer ({_summary(bus_devices)})" if bus_devices else ""
            results.append(Result(name, False, f"{port} does not exist{held}",
                                  f"plug the adapter in and look for it with `ls -l /dev/serial/by-id/`; give it a stable name "
                                  f"with `edge udev-rules --config FILE`, then set {owner}'s port to that name"))
        elif not os.access(port, os.R_OK | os.W_OK):
            results.append(Result(name, False, f"{port} exists but this user may not read and write it",
                                  f"run the doctor as the service user (sudo -u {SERVICE_USER} edge doctor ...) or add the user to the port's group"))
        elif (why := _service_user_may_use(port)) is not None:
            group = grp.getgrgid(os.stat(port).st_gid).gr_name
            results.append(Result(name, False, f"{port} {why}", f"sudo usermod -aG {group} {SERVICE_USER} && sudo systemctl restart edge"))
        else:
            results.append(Result(name, True, f"{port} is there and usable"))
    return results


async def probe_devices(config: BuildingConfig, within_s: float = PROBE_S) -> dict[str, str | None]:
    """Poll every Modbus device with the gateway's Poller for a moment: None = answered, else what went wrong."""
    specs = device_specs(config, device_profiles(config))
    answered: set[str] = set()
    faults: dict[str, str] = {}

    async def observe(observation: Observation) -> None:
        if isinstance(observation, Reading):
            answered.add(observation.device)
        elif isinstance(observation, PollFault):
            faults.setdefault(observation.device, f"{observation.kind}: {observation.detail}"[:200])

    poller = Poller(specs, observe)
    polling = asyncio.create_task(poller.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    try:
        while loop.time() < deadline and not polling.done() and any(s.name not in answered and s.name not in faults for s in specs):
            await asyncio.sleep(0.05)
    finally:
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
    return {s.name: None if s.name in answered else faults.get(s.name, f"no answer within {within_s:.0f} s") for s in specs}


def _summary(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def missing_buses(config: BuildingConfig) -> dict[str, str]:
    """Serial buses whose port is not there (by path or by udev identity): bus name -> the port."""
    identities = {i.name: i for i in config.udev}
    serial = [b for b in config.buses if isinstance(b, SerialBus)]
    present = present_devices({"tty"}) if any(b.port.startswith(PREFIX) for b in serial) else []
    missing = {}
    for bus in serial:
        if bus.port.startswith(PREFIX):
            identity = identities.get(bus.port.removeprefix(PREFIX))
            if identity is None or sum(1 for d in present if matches(identity, d)) != 1:
                missing[bus.name] = bus.port
        elif not os.path.exists(bus.port):
            missing[bus.name] = bus.port
    return missing


def check_devices(config: BuildingConfig, live: dict | None) -> list[Result]:
    """One result per device; but a bus whose port is missing, or on which no device answers, is one
    FAIL for the bus with its devices summarised (twelve FAILs for one unplugged adapter hide the cause)."""
    if not config.devices:
        return []
    unplugged = missing_buses(config)
    if live is not None:
        states = {d["name"]: (None if d["online"] else (d.get("detail") or "offline")) for d in live["devices"]}
        how = "the running daemon reports"
    else:
        reachable = config.model_copy(update={"devices": [d for d in config.devices if d.bus not in unplugged]})
        states = asyncio.run(probe_devices(reachable)) if reachable.devices else {}
        how = "polled"
    buses = {b.name: b for b in config.buses}
    results = []
    for bus in config.buses:
        on_bus = [d.name for d in config.devices if d.bus == bus.name]
        where = bus.port if isinstance(bus, SerialBus) else f"{bus.host}:{bus.port}"
        if not on_bus:
            continue
        if bus.name in unplugged:
            continue  # its serial port's FAIL (check_ports) names the bus and summarises its devices
        if len(on_bus) > 1 and all(states.get(name, "unknown to the daemon") is not None for name in on_bus):
            first = states.get(on_bus[0]) or "unknown to the daemon"
            line = ("the adapter, the A/B wiring and the line settings (baud, parity)" if isinstance(bus, SerialBus)
                    else f"that the Modbus TCP gateway at {where} is reachable from here")
            results.append(Result(f"bus {bus.name}", False, f"none of its {len(on_bus)} devices answers on {where} "
                                  f"({_summary(on_bus)}; first: {first})", f"check {line}"))
    judged_buses = {r.check.removeprefix("bus ") for r in results} | set(unplugged)
    for device in config.devices:
        if device.bus in judged_buses:
            continue
        problem = states.get(device.name, "unknown to the daemon")
        bus = buses[device.bus]
        where = f"bus {bus.name} ({bus.port if isinstance(bus, SerialBus) else f'{bus.host}:{bus.port}'}), address {device.address}"
        if problem is None:
            results.append(Result(f"device {device.name}", True, f"answers ({how}) on {where}"))
        else:
            line = ("the A/B wiring, and that its line settings match the bus (baud, parity)" if isinstance(bus, SerialBus)
                    else f"that the Modbus TCP gateway at {bus.host}:{bus.port} is reachable from here")
            results.append(Result(f"device {device.name}", False, f"does not answer on {where}: {problem}",
                                  f"check its power, that its Modbus address is {device.address}, and {line}; profile {device.profile}"))
    return results


def check_cameras(config: BuildingConfig, live: dict | None) -> list[Result]:
    """Each camera delivers a frame: asked of the running daemon (it owns the streams), else one
    frame grabbed here. OpenCV is imported only when a camera is configured."""
    if not config.cameras:
        return []
    reported = {c["name"]: c for c in (live or {}).get("cameras", [])}
    results = []
    for camera in config.cameras:
        fix = (f"check the camera's power and its cable or network, and that its source opens on this machine "
               f"(ffplay '{camera.source}'); an IP camera's substream URL is in its web page")
        if live is not None:
            state = reported.get(camera.name, {})
            age = state.get("last_frame_age_s")
            if state.get("stream") == "ok" and age is not None and age <= camera.stall_s:
                results.append(Result(f"camera {camera.name}", True, f"delivers frames (the running daemon saw one {age:.1f} s ago); guard mode {state.get('mode')}"))
            else:
                found = state.get("detail") or (f"no frame for {age:.0f} s" if age is not None else "no frame yet")
                results.append(Result(f"camera {camera.name}", False, f"the running daemon reports: {found}", fix))
            continue
        from edge.drivers.camera.capture import grab_one

        frame = grab_one(camera.source, PROBE_S)
        if frame is None:
            results.append(Result(f"camera {camera.name}", False, f"no frame from {camera.source} within {PROBE_S:.0f} s", fix))
        else:
            height, width = frame.shape[:2]
            results.append(Result(f"camera {camera.name}", True, f"delivers frames ({width}x{height}) from {camera.source}"))
    return results


def check_guards(config: BuildingConfig) -> list[Result]:
    """Each camera's model (manifest, file and sha256, the hold classes in its class map) and every
    reason its guard does not hold. A broken model fails; so does a wired hold relay the guard may
    not use yet, listing what it still needs (a camera without a relay observes by design)."""
    results = []
    for camera in config.cameras:
        if camera.model is None:
            continue
        from edge.vision.qualification import model_reasons, verdict

        broken = model_reasons(camera)
        if broken:
            results.append(Result(f"model {camera.name}", False, "; ".join(broken),
                                  "install the model with its manifest (edge models install MANIFEST --from FILE); a model "
                                  "that cannot output a hold class needs a site model (models/TRAINING.md, edge vision train)"))
        else:
            results.append(Result(f"model {camera.name}", True, f"{camera.model}: file and sha256 match, class map has "
                                  f"{', '.join(camera.hold_classes)}"))
        found = verdict(camera, config.state_path)
        if found.may_hold:
            results.append(Result(f"guard {camera.name}", True, f"HOLD: {found.reason}"))
        else:
            said = f"OBSERVE (holds nothing), {len(found.reasons)} reason(s): " + "; ".join(found.reasons)
            results.append(Result(f"guard {camera.name}", camera.hold is None, said,
                                  "label this site's frames and qualify the model: edge vision eval --json > report, "
                                  "named by qualification.report (edge vision status lists what is missing)"))
    return results


def check_broker(config: BuildingConfig) -> list[Result]:
    uplink = config.uplink
    if not uplink.enabled:
        return [Result("broker", True, "uplink disabled: the gateway works offline")]
    where = f"{uplink.host}:{uplink.port}"
    try:
        with socket.create_connection((uplink.host, uplink.port), timeout=BROKER_TIMEOUT_S) as raw:
            if uplink.tls is None:
                return [Result("broker", True, f"{where} accepts connections (no TLS configured)")]
            context = ssl.create_default_context(cafile=str(uplink.tls.ca))
            if uplink.tls.cert is not None:
                context.load_cert_chain(str(uplink.tls.cert), str(uplink.tls.key))
            with context.wrap_socket(raw, server_hostname=uplink.host) as secure:
                return [Result("broker", True, f"{where}: TLS handshake ok ({secure.version()}), certificate verified against {uplink.tls.ca}")]
    except ssl.SSLCertVerificationError as error:
        return [Result("broker", False, f"{where}: the broker's certificate does not verify: {error.verify_message}",
                       f"put the CA that signed the broker's certificate in {uplink.tls.ca}, or fix uplink.host to the name on the certificate")]
    except (ssl.SSLError, OSError) as error:
        return [Result("broker", False, f"{where}: {error}",
                       "check uplink.host and uplink.port, the network and the firewall (the broker must be reachable from here)")]


def check_clock() -> list[Result]:
    synced = ntp_synchronised()
    if synced:
        return [Result("clock", True, "synchronised (NTP)")]
    found = "not synchronised" if synced is False else "the kernel could not be asked"
    return [Result("clock", False, found, "sudo timedatectl set-ntp true (or install chrony), and check that the NTP server is reachable")]


def check_state_dir(config: BuildingConfig) -> list[Result]:
    directory = config.state_path
    existing = next((p for p in (directory, *directory.parents) if p.exists()), Path("/"))
    need = int(config.journal.cap_mb * 1024 * 1024)
    free = shutil.disk_usage(existing).free
    results = []
    if not directory.is_dir():
        found = f"{directory} does not exist" if not directory.exists() else f"{directory} is not a directory"
        results.append(Result("state directory", False, found,
                              f"the unit's StateDirectory=edge makes /var/lib/edge when it starts; elsewhere: "
                              f"sudo install -d -o {SERVICE_USER} -g {SERVICE_USER} -m 0750 {directory}"))
    elif not os.access(directory, os.W_OK):
        results.append(Result("state directory", False, f"{directory} is not writable by this user",
                              f"the unit's StateDirectory=edge makes it for the service user; else: sudo install -d -o {SERVICE_USER} -m 0750 {directory}"))
    else:
        results.append(Result("state directory", True, f"{directory} is writable"))
    if free < need:
        results.append(Result("disk space", False, f"{free / 2**20:.0f} MiB free where the journal lives, the cap is {need / 2**20:.0f} MiB",
                              "free space on that disk, or lower journal.cap_mb in the config"))
    else:
        results.append(Result("disk space", True, f"{free / 2**30:.1f} GiB free for a journal capped at {need / 2**20:.0f} MiB"))
    return results


def run(path: Path, live: dict | None) -> list[Result]:
    """Every check, in the order a technician fixes things."""
    config, results = check_config(path)
    if config is None:
        return results
    results += check_state_dir(config)
    results += check_ports(config)
    results += check_devices(config, live)
    results += check_cameras(config, live)
    results += check_guards(config)
    results += check_broker(config)
    results += check_clock()
    return results
