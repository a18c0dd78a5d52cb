"""A throwaway PostgreSQL cluster: initdb in a temp dir, a free port, pg_ctl start/stop.

For the tests, the benchmark and a developer's first try of `edge-fleet`; never a system-wide
cluster and never a fixed port. The binaries come from Debian's `postgresql` package
(/usr/lib/postgresql/VERSION/bin, the newest version found) or from $PG_BIN. PostgreSQL
refuses to run as root, so as root the cluster is owned and run by the `postgres` user the
package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bin() -> Path:
    """The directory holding initdb and pg_ctl."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise FileNotFoundError("no initdb: install Debian's postgresql package (./dev test does) or set PG_BIN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """`with LocalPostgres() as pg: pg.dsn`; `stop()` and `start()` for outages (same port, same data)."""

    def __init__(self, port: int | None = None, bin_dir: Path | None = None) -> None:
        self.bin = bin_dir or find_bin()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._tmp = tempfile.mkdtemp(prefix="edge-fleet-pg-")
        self.data = Path(self._tmp) / "data"
        self.log = Path(self._tmp) / "postgres.log"
        self._user = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self._tmp, self._user.pw_uid, self._user.pw_gid)
        self.dsn = f"host={self.host} port={self.port} user=fleet dbname=fleet connect_timeout=5"

    def _run(self, *args: str, timeout_s: float = 60) -> None:
        extra = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, cwd=self._tmp, **extra)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")

    def init(self) -> "LocalPostgres":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "fleet", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self._tmp}'\n"
                       "fsync = on\nmax_connections = 60\nshared_buffers = 64MB\n")
        return self

    def start(self, timeout_s: float = 60) -> "LocalPostgres":
        if not self.data.exists():
            self.init()
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout_s)), "start",
                  timeout_s=timeout_s + 5)
        deadline = time.monotonic() + timeout_s
        while True:  # pg_ctl -w waits for the postmaster; the database is made once
            try:
                self._run(str(self.bin / "psql"), "-h", self.host, "-p", str(self.port), "-U", "fleet", "-d", "postgres",
                          "-tAc", "SELECT 1 FROM pg_database WHERE datname='fleet'", timeout_s=10)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            self._run(str(self.bin / "createdb"), "-h", self.host, "-p", str(self.port), "-U", "fleet", "fleet", timeout_s=30)
        except RuntimeError as error:
            if "already exists" not in str(error):
                raise
        return self

    def stop(self, mode: str = "fast", timeout_s: float = 60) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout_s)), "stop",
                      timeout_s=timeout_s + 5)

    def cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop("immediate")
        finally:
            self.cleanup()
