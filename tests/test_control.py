"""The control socket over a real Unix socket: every request is answered, a bad one with an error
that names the field, and no bad request reaches a handler (so nothing unbounded is journaled)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from edge.hil.waiting import until
from edge.runtime.control import MAX_TEXT, ControlServer, ask

from conftest import in_background

GOOD = {"op": "door.unlock", "door": "front", "operator": "tech-4", "reason": "delivery for flat 402"}


def _send(path, payload: bytes) -> dict:
    """One raw request line, as any local process may write it; the answer, parsed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(20)
        client.connect(str(path))
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    assert received.endswith(b"\n"), f"no answer line to {payload[:60]!r}"
    return json.loads(received)


BAD = {
    "nested": json.dumps({**GOOD, "door": {"name": [["front"]]}}).encode() + b"\n",
    "deep": b'{"op": "door.unlock", "door": ' + b"[" * 30000 + b"]" * 30000 + b"}\n",
    "op a list": json.dumps({**GOOD, "op": ["door.unlock"]}).encode() + b"\n",
    "op a number": json.dumps({**GOOD, "op": 5}).encode() + b"\n",
    "not an object": b"[1, 2, 3]\n",
    "reason 60 KB": json.dumps({**GOOD, "reason": "x" * 60_000}).encode() + b"\n",
    "reason one too long": json.dumps({**GOOD, "reason": "x" * (MAX_TEXT + 1)}).encode() + b"\n",
    "operator a list": json.dumps({**GOOD, "operator": ["a"]}).encode() + b"\n",
    "too many fields": json.dumps({**GOOD, **{f"f{n}": n for n in range(40)}}).encode() + b"\n",
    "over 64 KiB": json.dumps({**GOOD, "reason": "x" * 70_000}).encode() + b"\n",
    "not UTF-8": b'{"op": "door.unlock", "door": "\xff\xfe"}\n',
    "not JSON": b"door.unlock front\n",
    "empty": b"",
}


def test_every_bad_request_gets_an_error_reply_and_never_reaches_a_handler(tmp_path):
    seen: list[dict] = []

    async def unlock(request: dict) -> dict:
        seen.append(request)
        return {"ok": True, "door": request["door"], "at": object()}  # not JSON: still an answer

    async def scenario():
        server = ControlServer(tmp_path / "control.sock", {"door.unlock": unlock})
        async with in_background(server.run()):
            await until(lambda: (tmp_path / "control.sock").exists(), 10, "the control socket", every_s=0.01)
            answers = {name: await asyncio.to_thread(_send, tmp_path / "control.sock", payload) for name, payload in BAD.items()}
            good = await asyncio.to_thread(ask, tmp_path / "control.sock", GOOD)
        return answers, good

    answers, good = asyncio.run(scenario())
    refused = {name: answer for name, answer in answers.items() if answer.get("ok") is not False or not answer.get("error")}
    assert not refused, f"not refused with a reason: {refused}"
    assert good["ok"] is True and good["door"] == "front"
    assert seen == [GOOD], "only the good request reached the handler"
    assert answers["reason 60 KB"]["error"].startswith("reason: String should have at most 500 characters")
    assert answers["nested"]["error"].startswith("door: ")
    assert answers["op a list"]["error"].startswith("op: ")
    assert "64 KiB" in answers["over 64 KiB"]["error"] and "64 KiB" in answers["deep"]["error"]


@pytest.mark.parametrize("reason", ["", "x" * MAX_TEXT, "送货到402室"])
def test_a_reason_up_to_the_bound_in_any_script_is_taken(tmp_path, reason):
    from edge.runtime.control import parse_request

    assert parse_request(json.dumps({**GOOD, "reason": reason}).encode())["reason"] == reason


def test_a_cloud_command_meets_the_same_bounds_before_its_operation_runs():
    from edge.uplink.commands import CommandOutcome, CommandTable
    from edge.uplink.wiring import as_command

    seen: list[dict] = []

    async def unlock(request: dict) -> dict:
        seen.append(request)
        return {"ok": True}

    async def scenario():
        table = CommandTable()
        table.register("door.unlock", as_command("door.unlock", unlock))
        long = await table.run("door.unlock", {"door": "front", "operator": "cloud-1", "reason": "x" * 60_000})
        nested = await table.run("door.unlock", {"door": {"name": "front"}, "operator": "cloud-1"})
        good = await table.run("door.unlock", {"door": "front", "operator": "cloud-1", "reason": "courier"})
        return long, nested, good

    long, nested, good = asyncio.run(scenario())
    assert long.outcome is CommandOutcome.FAILED and long.detail["error"].startswith("reason: String should have at most 500")
    assert nested.outcome is CommandOutcome.FAILED and nested.detail["error"].startswith("door: ")
    assert good.outcome is CommandOutcome.DONE and seen == [{"door": "front", "operator": "cloud-1", "reason": "courier"}]
