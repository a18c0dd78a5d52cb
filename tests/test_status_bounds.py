"""The status server's bounds, against `edge run` as a subprocess: a flood of idle connections under a
1,024 descriptor limit, idle and slowloris connections, stream clients that never read, a header that
is not UTF-8. The daemon and its other workers must not notice any of it."""

from __future__ import annotations

import asyncio
import resource
import select
import socket
import time
from urllib.parse import urlsplit

from edge.journal import EventQuery, read_events

from status_rig import TENANT, Site, Stream, until

FLOOD = 1500
DAEMON_FILES = 1024  # systemd's default soft limit, what the daemon had before the unit set LimitNOFILE


class LimitedSite(Site):
    """The rig's building, its daemon started under a soft descriptor limit of DAEMON_FILES."""

    def __init__(self, write_config, **kwargs) -> None:
        super().__init__(write_config, files=DAEMON_FILES, **kwargs)

    def log(self) -> str:
        return (self.config_path.parent / "daemon.log").read_text(errors="replace")

    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname, parts.port


def _journal(site: Site, *kinds: str):
    return read_events(site.config.journal_path, EventQuery(kinds=kinds, limit=None))


def _connect(address: tuple[str, int], receive_buffer: int | None = None) -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    client.setblocking(False)
    try:
        client.connect(address)
    except BlockingIOError:
        pass
    return client


def _flood(address: tuple[str, int], rounds: int) -> int:
    """FLOOD idle connections that send nothing; each one the server closes is opened again, `rounds`
    times. Returns how many the server closed (refused over its cap, or timed out)."""
    clients = [_connect(address) for _ in range(FLOOD)]
    closed = 0
    try:
        for _ in range(rounds):
            time.sleep(1.0)
            for n, client in enumerate(clients):
                if _readable(client):  # refused (a 503, then EOF), reset or timed out: the server let it go
                    closed += 1
                    client.close()
                    clients[n] = _connect(address)
    finally:
        for client in clients:
            client.close()
    return closed


def _raise_own_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * FLOOD), hard))


def test_a_flood_of_idle_connections_under_a_1024_descriptor_limit_leaves_the_daemon_and_its_workers_running(write_config):
    _raise_own_limit()

    async def scenario():
        async with LimitedSite(write_config) as site:
            await site.start()
            await until(lambda: _ok(site, "/healthz"), 20, "healthz 200 before the flood")
            flood = asyncio.create_task(asyncio.to_thread(_flood, site.address(), 8))
            await asyncio.sleep(2.0)  # the flood is on
            site.reader.present(TENANT, repeats=2)
            await until(lambda: _journal(site, "access.decision"), 20, "the tap decided during the flood")
            closed = await flood
            await until(lambda: _ok(site, "/healthz"), 30, "healthz 200 after the flood")
            assert site.daemon.poll() is None
            failures = _journal(site, "fault.task_failed")
            decision = _journal(site, "access.decision")[0]
            assert await site.stop() == 0
            return site.log(), closed, failures, decision

    log, closed, failures, decision = asyncio.run(scenario())
    assert decision.body["granted"] and decision.body["reason"] == "granted"
    assert not failures, f"workers failed: {[e.body for e in failures]}"
    assert "Too many open files" not in log and "out of system resource" not in log and "Traceback" not in log
    assert "status server full" in log and closed > 0, "connections over the cap were refused"


def test_idle_and_slowloris_connections_are_closed_while_requests_are_answered(write_config):
    async def scenario():
        async with LimitedSite(write_config) as site:
            await site.start()
            await until(lambda: _ok(site, "/healthz"), 20, "healthz 200")
            idle = _connect(site.address())
            slow = _connect(site.address())
            await asyncio.sleep(0.2)
            slow.setblocking(True)
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            head = b"X-Trickle: " + b"a" * 200
            for n in range(120):  # one byte of the head every half second, for up to a minute
                if _closed(idle) and _closed_while_sending(slow, head[n:n + 1] if n < len(head) else b"b"):
                    break
                assert await _ok(site, "/healthz"), "others are answered meanwhile"
                await asyncio.sleep(0.5)
            closed = _closed(idle), _closed_while_sending(slow, b"c")
            idle.close()
            slow.close()
            assert await site.stop() == 0
            return closed

    assert asyncio.run(scenario()) == (True, True), "the idle connection and the slowloris head were both closed"


def test_stream_clients_that_never_read_are_dropped_and_a_reading_browser_gets_a_slot(write_config):
    async def scenario():
        async with LimitedSite(write_config) as site:
            await site.start()
            await until(lambda: _ok(site, "/healthz"), 20, "healthz 200")
            async with Stream(site.url) as reading:
                await until(lambda: reading.of("state"), 10, "the reading browser's first state")
                stuck = []
                for _ in range(16):
                    client = _connect(site.address(), receive_buffer=4096)
                    await asyncio.sleep(0.05)
                    client.setblocking(True)
                    client.sendall(b"GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                    stuck.append(client)  # never read from again
                assert (await site.get("/api/stream"))[0] == 503, "every stream slot is taken"
                seen = len(reading.of("state"))

                async def a_slot() -> bool:
                    try:
                        async with Stream(site.url) as late:
                            await until(lambda: late.of("state"), 10, "the late browser's first state")
                            return True
                    except AssertionError:
                        return False
                await until(a_slot, 120, "a stream slot for a browser that reads", every_s=1.0)
                assert len(reading.of("state")) > seen, "the browser that reads kept its stream"
                assert not reading.reading.done()
            for client in stuck:
                client.close()
            assert await site.stop() == 0
            return site.log()

    log = asyncio.run(scenario())
    assert "status stream dropped: the client does not read" in log


def test_a_header_that_is_not_utf8_is_a_400_before_authentication(write_config, building_dir):
    (building_dir / "secrets").mkdir(exist_ok=True)
    (building_dir / "secrets" / "status.token").write_text("s3cret-token-for-the-tunnel\n")
    http = {"bind": "127.0.0.1", "port": 0, "beyond_localhost": True, "token": {"file": "secrets/status.token"}}

    async def scenario():
        async with LimitedSite(write_config, http=http) as site:
            await site.start()
            answers = [await asyncio.to_thread(_raw, site.address(), head) for head in (
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \xff\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Anything: caf\xc3\r\n\r\n",
                "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-tökén\r\n\r\n".encode(),
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token-for-the-tunnel\r\n\r\n",
            )]
            assert await site.stop() == 0
            return answers, site.log()

    answers, log = asyncio.run(scenario())
    assert [a.split(b" ", 2)[1] for a in answers] == [b"400", b"400", b"400", b"400", b"200"], answers
    assert "Traceback" not in log and "Error handling request" not in log


def _raw(address: tuple[str, int], head: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as client:
        client.sendall(head)
        return client.recv(65536)


async def _ok(site: Site, path: str) -> bool:
    try:
        status, _ = await site.get(path)
    except (OSError, asyncio.TimeoutError):
        return False
    return status == 200


def _readable(client: socket.socket) -> bool:
    """poll, not select: a flood's descriptors are above select's 1,024."""
    poller = select.poll()
    poller.register(client, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _closed(client: socket.socket) -> bool:
    """Has the server closed this connection (EOF or reset waiting to be read)?"""
    if not _readable(client):
        return False
    try:
        client.setblocking(False)
        return client.recv(65536) == b""  # EOF; nothing else is ever sent to a head that is not whole
    except BlockingIOError:
        return False
    except OSError:
        return True


def _closed_while_sending(client: socket.socket, data: bytes) -> bool:
    if _closed(client):
        return True
    try:
        client.setblocking(True)
        client.sendall(data)
    except OSError:
        return True
    return False
