"""Headless Debian chromium driven over the DevTools protocol, for the status page's tests.

Started with the flags a CI container needs (no sandbox, no GPU, nothing phoning home) and
a throw-away profile; `evaluate` runs an expression in the page and returns its value.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import tempfile
from pathlib import Path

import aiohttp

from edge.hil import waiting

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--window-size=1280,1000"]


class Chromium:
    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = itertools.count(1)

    async def __aenter__(self) -> "Chromium":
        assert CHROMIUM is not None
        self.profile = Path(tempfile.mkdtemp(prefix="edge-chromium-"))
        # a session of its own, so its helpers (zygote, renderers, crashpad) go with it at the end
        self.process = await asyncio.create_subprocess_exec(
            CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0", self.url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        self.session = self.socket = None
        try:
            await self._connect()
        except BaseException as error:
            await self.__aexit__(type(error), error, error.__traceback__)
            raise
        return self

    async def _connect(self) -> None:
        active = self.profile / "DevToolsActivePort"
        deadline = asyncio.get_running_loop().time() + 30
        await waiting.until(lambda: active.exists() and active.read_text().count("\n") >= 1, 30, "chromium's DevTools port")
        port = int(active.read_text().splitlines()[0])
        self.session = aiohttp.ClientSession()

        async def opened_pages() -> list[dict]:
            async with self.session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                return [t for t in await answer.json() if t["type"] == "page"]

        pages = await waiting.until(opened_pages, max(0.0, deadline - asyncio.get_running_loop().time()), "a page chromium opened")
        self.socket = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)

    async def send(self, method: str, **params) -> dict:
        ident = next(self._ids)
        await self.socket.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.socket.receive_json(), 30)
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        import base64

        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    async def __aexit__(self, *exc: object) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.session is not None:
            await self.session.close()
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            pass
        self._signal(signal.SIGKILL)  # a helper that outlived the browser would go on writing the profile
        await self.process.wait()
        for _ in range(50):  # a killed helper's last writes land a moment after its signal
            try:
                shutil.rmtree(self.profile)
                return
            except FileNotFoundError:
                return
            except OSError:
                await asyncio.sleep(0.1)
        if exc[0] is None:  # never hide what the test itself raised
            raise AssertionError(f"chromium's profile {self.profile} could not be removed within 5 s")

    def _signal(self, number: int) -> None:
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass  # the whole group is gone
