"""`edge status`: one screen for the technician, from the running daemon or, without it, from the journal.

With the daemon up, the screen comes from its local status server (the address it wrote to
STATE_DIR/http.json), so it shows live poll counters and the uplink backlog. With the daemon
down, the same BuildingView is folded from the journal and the config alone, and the screen
says so in its first line: a stopped gateway is exactly when someone runs this.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge.config.building import BuildingConfig
from edge.status.clock import ntp_synchronised
from edge.status.address import endpoint_places
from edge.status.tail import fold_journal
from edge.status.view import BuildingView

ASK_TIMEOUT_S = 3.0


def daemon_url(config: BuildingConfig) -> str | None:
    """The running daemon's status server, if its endpoint file names a live process."""
    for endpoint in endpoint_places(config):  # the runtime dir first, as the server writes it
        try:
            document = json.loads(endpoint.read_text())
            pid, url = int(document["pid"]), str(document["url"])
            break
        except (OSError, ValueError, KeyError, TypeError):
            continue
    else:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left behind by a daemon that was killed
    except PermissionError:
        pass  # alive, run by the service user
    return url


def from_daemon(config: BuildingConfig) -> dict[str, Any] | None:
    url = daemon_url(config)
    if url is None:
        return None
    request = urllib.request.Request(url + "api/status")
    if config.http.token is not None:
        request.add_header("Authorization", f"Bearer {config.http.token.read().decode()}")
    try:
        with urllib.request.urlopen(request, timeout=ASK_TIMEOUT_S) as answer:
            return json.load(answer)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def from_journal(config: BuildingConfig) -> dict[str, Any] | None:
    """What the journal says of the last run; None when there is no journal at all."""
    path = config.journal_path
    if not path.exists():
        return None
    view = BuildingView(config)
    fold_journal(path, view)
    snapshot = view.snapshot(time.time())
    for point in snapshot["points"]:
        point.pop("history")
    for device in snapshot["devices"]:  # the newest telemetry of any of its points: the best the journal knows
        ages = [p["age_s"] for p in snapshot["points"] if p["point"].split(".", 1)[0] == device["name"] and p["age_s"] is not None]
        device["last_good_age_s"] = min(ages) if ages else None
    snapshot["clock"]["ntp_synchronised"] = ntp_synchronised()
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    snapshot["journal"] = {"path": str(path), "head_seq": view.head_seq, "bytes": size, "free_bytes": shutil.disk_usage(path.parent).free}
    snapshot["source"] = "journal"
    return snapshot


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def _since(now: float, at: float | None) -> str:
    return "-" if at is None else _age(max(0.0, now - at)) + " ago"


def _camera_line(camera: dict[str, Any], live: bool, now: float) -> str:
    """Mode (OBSERVE or HOLD) and why, the stream's state and the last frame's age (the daemon's alone)."""
    mode = "HOLDING" if camera.get("held") else (camera.get("mode") or "?").upper()
    age = camera.get("last_frame_age_s")
    shown = _age(age) if age is not None or live else "-"
    if camera.get("mode") is None:
        detail = "the guard has not started (no model and no collect mode, or the daemon never ran it)"
    else:
        stream = "stream ok" if camera.get("stream") == "ok" else f"stream FAULT: {camera.get('detail')}"
        detail = f"{stream}; {camera.get('reason')}"
        if camera.get("vision_fault"):
            detail += f"; model fault: {camera['vision_fault']}"
        if camera.get("held"):
            detail = f"car held for a {camera['held'].get('class')}, {_since(now, camera['held']['since'])}; {detail}"
        elif camera.get("observed"):
            detail += f"; would have held for a {camera['observed'].get('class')} {_since(now, camera['observed']['at'])}"
    return f"{'camera ' + camera['name']:<28} {mode:<10} {shown:>10}  {detail}"


def render(config: BuildingConfig, status: dict[str, Any]) -> str:
    now = status.get("now") or time.time()
    lines: list[str] = []
    building = status["building"]
    if status["source"] == "daemon":
        lines.append(f"building {building['id']}: daemon running (live, from its local status server)")
    else:
        last = status.get("last_event_at")
        lines.append(f"building {building['id']}: DAEMON NOT RUNNING: from the journal and the config; "
                     f"state as of the last event, {_since(now, last)}")
    cut = status.get("cut_circuits", [])
    if cut:
        lines.append("")
        lines.append(f"CUT CIRCUITS ({len(cut)}): no power downstream until re-closed (edge breaker close)")
        lines += [f"  {_since(now, c['at']):>10}  {c['text']}" for c in cut]
    alarms = status["alarms"]
    lines.append("")
    lines.append(f"ALARMS ({len(alarms)} active)" if alarms else "ALARMS: none active")
    lines += [f"  {_since(now, a['at']):>10}  {a.get('severity', 'alarm'):<8} {a['text']}" for a in alarms]
    lines.append("")
    lines.append(f"{'BUS / DEVICE':<28} {'STATE':<10} {'LAST GOOD':>10}  DETAIL")
    devices = {d["name"]: d for d in status["devices"]}
    for bus in config.buses:
        where = getattr(bus, "port", None) if bus.type == "rtu" else f"{bus.host}:{bus.port}"
        lines.append(f"{'bus ' + bus.name:<28} {'':<10} {'':>10}  {bus.type} {where}")
        for device in config.devices:
            if device.bus != bus.name:
                continue
            d = devices.get(device.name, {})
            state = "OFFLINE" if not d.get("online", True) else "UNIDENTIFIED" if d.get("unidentified") else "online"
            polls = f"{d['answers']}/{d['polls']} answered" if "polls" in d else ""
            detail = d.get("detail") if not d.get("online", True) else d["unidentified"] if d.get("unidentified") else polls
            seen = d.get("last_good_age_s")
            shown = _age(seen) if seen is not None or status["source"] == "daemon" else "-"
            lines.append(f"  {device.name:<26} {state:<10} {shown:>10}  {detail or ''}")
    lines.append("")
    for reader in status["readers"]:
        state = "online" if reader["online"] else "OFFLINE"
        port = next((r.port for r in config.readers if r.name == reader["name"]), "")
        detail = f"{port}" + (f": {reader['detail']}" if not reader["online"] and reader.get("detail") else "")
        lines.append(f"{'reader ' + reader['name']:<28} {state:<10} {_since(now, reader.get('since')):>10}  {detail}")
    for door in status["doors"]:
        last = door.get("last")
        detail = f"last: {last['reason']} {_since(now, last['at'])}" if last else "no card yet"
        lines.append(f"{'door ' + door['name']:<28} {door['state']:<10} {'':>10}  {detail}")
    for camera in status.get("cameras", []):
        lines.append(_camera_line(camera, status["source"] == "daemon", now))
    lines.append("")
    lines.append(f"{'POINT':<42} {'VALUE':>10} {'UNIT':<5} {'AGE':>8}  STATE")
    for point in status["points"]:
        value = "-" if point["value"] is None else f"{point['value']:.3f}".rstrip("0").rstrip(".")
        name = f"{point['owner']} {point['point'].split('.', 1)[1]}"
        lines.append(f"{name:<42} {value:>10} {point['unit']:<5} {_age(point['age_s']):>8}  {point['state']}")
    faults = status.get("faults", [])
    if faults:  # what the gateway cannot watch now, also shown on its device's or reader's line above
        lines.append("")
        lines.append(f"FAULTS ({len(faults)} active)")
        lines += [f"  {_since(now, f['at']):>10}  {f['text']}" for f in faults]
    lines.append("")
    uplink = status["uplink"]
    if not uplink["enabled"]:
        lines.append("uplink: off (the gateway works offline)")
    else:
        state = {True: "up", False: "DOWN", None: "not yet connected"}[uplink.get("connected", uplink.get("up"))]
        backlog = uplink.get("backlog")
        lines.append(f"uplink: {state}" + (f", backlog {backlog} events" if backlog is not None else "")
                     + (f" ({uplink['detail']})" if uplink.get("detail") and state != "up" else ""))
    clock = status["clock"]
    ntp = {True: "NTP synchronised", False: "NOT synchronised (no NTP)", None: "synchronisation unknown"}[clock.get("ntp_synchronised")]
    lines.append(f"clock: {ntp}" + ("" if clock.get("trusted", True) else f"; the gateway does not trust it ({clock.get('detail')})"))
    journal = status.get("journal", {})
    free = journal.get("free_bytes")
    lines.append(f"journal: {journal.get('path')}, head seq {journal.get('head_seq')}, "
                 f"{(journal.get('bytes') or 0) / 2**20:.1f} MiB; disk left {'?' if free is None else f'{free / 2**30:.1f} GiB'}")
    return "\n".join(lines)
