"""The local control channel: how `edge` commands ask the running daemon to act.

The daemon owns the RS-485 lines, so a command that must touch a device (closing a breaker)
cannot open the port itself; it asks the daemon over a Unix socket in the runtime dir
(systemd's RuntimeDirectory under /run: tmpfs, so a full or read-only state disk never keeps a
technician's `edge fire reset` from the daemon; the state dir only when no runtime dir can be
made). The socket is owner-only (0600): whoever may talk to it may re-energise a floor. One JSON
request per connection, one JSON response, each a single line of at most 64 KiB.

    request:  {"op": "breaker.close", "circuit": "f1-c1", "operator": "...", "reason": "..."}
    response: {"ok": true, ...}  or  {"ok": false, "error": "..."}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum
from os import EX_UNAVAILABLE  # sysexits codes
from pathlib import Path
from typing import Annotated, Any

import structlog
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StringConstraints, ValidationError, model_validator

from edge.config.building import DEFAULT_RUNTIME_DIR, BuildingConfig

log = structlog.get_logger("edge.runtime.control")

SOCKET_NAME = "control.sock"
MAX_MESSAGE = 65536
MAX_FIELDS = 24
MAX_TEXT = 500  # a reason, an operator id, a door name: what a person types, journaled as it came
READ_WITHIN_S = 5.0
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class GatewayOp(StrEnum):
    """The daemon's own operations (edge/gateway.py serves them); a feature declares its own in
    its feature.py (DoorOp, PowerOp, ...), edge/fieldbus its DeviceOp."""

    CONFIG_RELOAD = "config.reload"


def socket_places(config: BuildingConfig) -> list[Path]:
    """Where the daemon makes its socket, in order: the runtime dir first, the state dir last."""
    return [place / SOCKET_NAME for place in config.runtime_paths]


def socket_path(where: BuildingConfig | Path) -> Path:
    """The socket a command asks: the first place (of a BuildingConfig's) that holds one, else the
    first place; a Path is a state dir of its own."""
    if isinstance(where, Path):
        return where / SOCKET_NAME
    places = socket_places(where)
    if not where.runtime_dir and not os.environ.get("RUNTIME_DIRECTORY"):
        places.append(DEFAULT_RUNTIME_DIR / SOCKET_NAME)  # a daemon under systemd with a state_dir of its own
    return next((place for place in places if place.is_socket()), places[0])


def socket_for_file(path: Path) -> Path:
    """The socket of the daemon that runs the config at `path`, found even when the file now has a
    problem (`edge reload` must reach the daemon to have the refusal journaled): its runtime_dir and
    state_dir are read as written (a line scan of the file's first MiB, so a file too large or too
    deep for the YAML reader still names them), the defaults otherwise."""
    from edge.config import yaml_source
    from edge.config.building import DEFAULT_STATE_DIR, ConfigError, load

    try:
        return socket_path(load(path))
    except ConfigError:
        pass
    try:
        with open(path, "rb") as file:
            head = file.read(yaml_source.MAX_BYTES).decode(errors="replace")
    except OSError:
        head = ""
    written = {key: "".join(value) for key, *value in _PLACE_LINE.findall(head)}
    places = [Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0])] if os.environ.get("RUNTIME_DIRECTORY") else []
    places += [path.parent / written[key] for key in ("runtime_dir", "state_dir") if key in written]
    places += [DEFAULT_RUNTIME_DIR, Path(DEFAULT_STATE_DIR)]
    candidates = [place / SOCKET_NAME for place in places]
    return next((candidate for candidate in candidates if candidate.is_socket()), candidates[0])


_PLACE_LINE = re.compile(r"""^(runtime_dir|state_dir):[ \t]*(?:"([^"]*)"|'([^']*)'|([^#\s]+))""", re.M)


_Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
_Flat = StrictBool | StrictInt | StrictFloat | _Text | None


class ControlRequest(BaseModel):
    """What may come in on the socket: an op and at most MAX_FIELDS flat fields, each bounded.

    Every op takes flat values only (names, ids, a reason, a limit), so nesting is refused here
    rather than in each handler, and nothing a handler journals (a 60 KB reason) can be larger
    than MAX_TEXT. Each op's handler still checks what its fields mean."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, _Flat]

    op: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    operator: _Text | None = None
    reason: _Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _few_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS} fields")
        return data


def parse_request(line: bytes) -> dict[str, Any]:
    """The request on one line, checked; ValueError says every problem, one per field."""
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise ValueError(f"the request is not one JSON line of at most {MAX_MESSAGE // 1024} KiB") from None
    return check_request(raw)


def check_request(raw: Any) -> dict[str, Any]:
    """`raw` as a request every operation may be handed (the socket's and the cloud's alike); ValueError
    says every problem, one per field."""
    if not isinstance(raw, dict):
        raise ValueError("the request is a JSON object: {\"op\": ..., ...}")
    try:
        ControlRequest.model_validate(raw)
    except ValidationError as invalid:
        problems: dict[str, list[str]] = {}
        for error in invalid.errors():
            field = str(error["loc"][0]) if error["loc"] else "request"
            problems.setdefault(field, []).append(error["msg"].removeprefix("Value error, "))
        raise ValueError("; ".join(
            f"{field}: {messages[0] if len(messages) == 1 else f'text (at most {MAX_TEXT} characters), a number, true/false or null'}"
            for field, messages in problems.items())) from None
    return raw


class DaemonUnavailable(Exception):
    """Nobody answers on the control socket: the daemon is not running (or not ours to ask)."""


class ControlServer:
    """Serves requests by their `op` until cancelled; a bad request gets an error, never a crash."""

    def __init__(self, path: Path | Sequence[Path], handlers: Mapping[str, Handler]) -> None:
        self.places = [path] if isinstance(path, Path) else list(path)
        self.path = self.places[0]
        self.handlers = {str(op): handler for op, handler in handlers.items()}  # the wire's names, not the features' enums

    async def _listen(self, path: Path) -> asyncio.AbstractServer:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a daemon that was killed
        old_umask = os.umask(0o177)  # the socket is born owner-only, no window with wider rights
        try:
            server = await asyncio.start_unix_server(self._serve, path=str(path), limit=MAX_MESSAGE)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        return server

    async def run(self) -> None:
        """Listen on the first place that takes the socket (a refusing disk passes to the next), until cancelled."""
        server = None
        for place in self.places:
            try:
                server = await self._listen(place)
            except OSError as refused:
                log.error("control socket cannot be made here", path=str(place), error=f"{type(refused).__name__}: {refused}")
                continue
            self.path = place
            break
        if server is None:
            raise OSError(f"the control socket could be made in none of {[str(p) for p in self.places]}")
        log.info("control socket", path=str(self.path))
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Every request gets an answer: a bad one an error, a handler's failure an error too."""
        try:
            try:
                response = await self._answer(reader)
            except Exception as error:  # whatever went wrong, the CLI hears it instead of silence
                log.exception("control request failed")
                response = {"ok": False, "error": f"internal error: {type(error).__name__}"}
            writer.write(json.dumps(response, ensure_ascii=False, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readline(), READ_WITHIN_S)
        except TimeoutError:
            return {"ok": False, "error": f"no request line within {READ_WITHIN_S:g} s"}
        except ValueError:  # readline's limit: a line over MAX_MESSAGE
            return {"ok": False, "error": f"the request is not one JSON line of at most {MAX_MESSAGE // 1024} KiB"}
        try:
            request = parse_request(line)
        except ValueError as problem:
            return {"ok": False, "error": str(problem)}
        if request["op"] not in self.handlers:
            return {"ok": False, "error": f"unknown op; known: {sorted(self.handlers)}"}
        try:
            return await self.handlers[request["op"]](request)
        except Exception as error:  # a handler bug must not take the channel down
            log.exception("control request failed", op=request["op"])
            return {"ok": False, "error": f"internal error: {type(error).__name__}"}


def ask(path: Path, request: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    """Send one request and wait for its answer (blocking: this is the CLI's side)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise DaemonUnavailable(f"the gateway daemon is not running (no answer on {path})") from error
        except PermissionError as error:
            raise DaemonUnavailable(f"not allowed to talk to the daemon on {path}: run as its user") from error
        client.sendall(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        received = b""
        while not received.endswith(b"\n"):
            chunk = client.recv(MAX_MESSAGE)
            if not chunk:
                break
            received += chunk
    if not received:
        raise DaemonUnavailable(f"the daemon closed {path} without an answer")
    return json.loads(received)


def command(name: str, where: BuildingConfig | Path, request: dict[str, Any], done: Callable[[dict[str, Any]], str]) -> int:
    """One technician command carried out by the daemon: print what happened, return the exit
    code (0 done, 1 refused or unconfirmed, 69 no daemon and so nothing done). `where`: the
    building config (its runtime and state dirs), or a state dir."""
    try:
        answer = ask(socket_path(where), request)
    except DaemonUnavailable as error:
        print(f"{name}: {error}; nothing was done", file=sys.stderr)
        return EX_UNAVAILABLE
    seq = f" (journal seq {answer['result_seq']})" if "result_seq" in answer else ""
    if answer.get("ok"):
        print(done(answer) + seq)
        return 0
    print(f"{name}: {answer.get('error', 'refused')}{seq}", file=sys.stderr)
    return 1
