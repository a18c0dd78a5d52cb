"""A real mosquitto for tests and benchmarks: a free port, a temp config, start/stop/restart.

`Broker` runs mosquitto as a subprocess (no persistence, so a restart is a broker that lost
all its state, as after a crash of a cloud broker without disk). `SlowLink` is a TCP relay in
front of it that paces bytes in both directions, to play a cellular link.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def unreachable_broker() -> Iterator[int]:
    """A port whose accept queue is full, so a connect to it hangs until the client's own timeout (a
    broker behind a firewall that drops packets): the uplink's connect holds its thread that long."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(4):  # more than the queue takes; the extra SYNs are dropped too
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(server.getsockname())
        fillers.append(filler)
    try:
        yield server.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@dataclass(frozen=True, slots=True)
class ListenerTls:
    """Make the listener TLS-only: the broker's certificate chain, and whether a client must show
    a certificate signed by `cafile` (as a cloud broker that authenticates gateways by certificate)."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False

    def config_lines(self) -> str:
        # mosquitto started as root drops to user `mosquitto` before it reads these files: stay who we are
        return (
            f"user {getpass.getuser()}\ncafile {self.cafile}\ncertfile {self.certfile}\nkeyfile {self.keyfile}\n"
            f"require_certificate {'true' if self.require_certificate else 'false'}\n"
        )


class Broker:
    """mosquitto on a free port; `message_size_limit` (payload bytes; MQTT 5 clients are dropped when over it)
    and `max_packet_size` (advertised in the CONNACK) play a cloud broker's limits; with `tls` the
    listener speaks TLS only."""

    def __init__(
        self, port: int | None = None, message_size_limit: int = 0, max_packet_size: int | None = None,
        tls: ListenerTls | None = None,
    ) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self._dir = tempfile.TemporaryDirectory(prefix="edge-mosquitto-")
        self.config = Path(self._dir.name) / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"max_inflight_messages 0\nmax_queued_messages 100000\nmessage_size_limit {message_size_limit}\nlog_dest none\n"
            + (f"max_packet_size {max_packet_size}\n" if max_packet_size else "")
            + (tls.config_lines() if tls else "")
        )
        self._process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10.0) -> "Broker":
        self._process = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self._process.stderr.read().decode()[:500]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a paused broker handles SIGTERM only once running
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def pause(self) -> None:
        """SIGSTOP: a broker that keeps its connections open and stops answering (a hung cloud)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start on the same port with a clean state (no persistence)."""
        self.stop()
        self.start()

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()


class SlowLink:
    """A TCP relay to (host, port) that passes at most `bytes_per_s` each way, in small chunks."""

    def __init__(self, host: str, port: int, bytes_per_s: int) -> None:
        self.target = (host, port)
        self.bytes_per_s = bytes_per_s
        self.port = 0
        self._server: asyncio.Server | None = None
        self.relayed = 0

    async def start(self) -> "SlowLink":
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = max(64, self.bytes_per_s // 20)
        try:
            while data := await reader.read(chunk):
                writer.write(data)
                await writer.drain()
                self.relayed += len(data)
                await asyncio.sleep(len(data) / self.bytes_per_s)
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
