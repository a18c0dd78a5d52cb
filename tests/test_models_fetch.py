"""`edge models fetch` and `install` of a manifest with a `url:`, against a real HTTP server on a free
port: a whole download installs (0640, the service's group when it exists); a truncated download
is refused and resumed with a Range request; a wrong-hash download is refused and deleted; a
non-permissive licence is refused before a byte is fetched and accepted by its SPDX id. Nothing is
ever left in STATE_DIR/models/NAME/ but a whole, checked model."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from edge import cli
from edge.vision import install

BLOB = os.urandom(300_000) + b"the model's last bytes"  # any bytes: install checks sha256, not ONNX


@dataclass
class ModelServer:
    """aiohttp serving BLOB at /model.onnx; `mode` makes it misbehave; every Range header is kept."""

    mode: str = "whole"  # whole | truncate | wrong | ignore-range
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range"))
        body = BLOB if self.mode != "wrong" else bytes(reversed(BLOB))
        start = 0
        if request.headers.get("Range") and self.mode != "ignore-range":
            start = int(request.headers["Range"].removeprefix("bytes=").split("-")[0])
        response = web.StreamResponse(status=206 if start else 200)
        response.content_length = len(body) - start
        if start:
            response.headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        await response.prepare(request)
        if self.mode == "truncate":
            await response.write(body[start:start + 100_000])
            request.transport.close()  # the line drops mid-file
            return response
        await response.write(body[start:])
        await response.write_eof()
        return response


@pytest.fixture
def server():
    served = ModelServer()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/model.onnx", served.handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)  # a free port
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    served.url = f"http://127.0.0.1:{port}/model.onnx"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield served
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def manifest(tmp_path: Path, url: str, licence: str = "Apache-2.0", size: int | None = len(BLOB), sha256: str | None = None) -> Path:
    path = tmp_path / "site_model.yaml"
    path.write_text(f"""name: site_model
file: site_model.onnx
sha256: {sha256 or hashlib.sha256(BLOB).hexdigest()}
licence: {licence}
url: {url}
{f"size: {size}" if size else ""}
input: {{width: 416, height: 416, colour: BGR, resize: letterbox}}
output: {{family: yolox}}
num_classes: 80
classes: {{1: bicycle, 3: motorcycle}}
""")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def installed_files(state: Path) -> list[Path]:
    return sorted(p for p in (state / "models" / "site_model").rglob("*")) if (state / "models" / "site_model").exists() else []


def test_fetch_downloads_checks_and_installs_readable_by_the_service(tmp_path, capsys, server):
    state = tmp_path / "state"
    code, out, err = run(capsys, "models", "fetch", str(manifest(tmp_path, server.url)), "--state-dir", str(state))
    assert code == 0, err
    model = state / "models" / "site_model" / "site_model.onnx"
    assert model.read_bytes() == BLOB and f"installed site_model (Apache-2.0): {model}" in out
    for path in (model, model.parent / "manifest.yaml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        if install.service_group() is not None:
            assert path.stat().st_gid == install.service_group()
    assert not list((state / "models" / ".downloads").iterdir())  # the download was moved into place, not left


def test_a_truncated_download_is_refused_then_resumed_where_it_stopped(tmp_path, capsys, server):
    state = tmp_path / "state"
    path = manifest(tmp_path, server.url)
    server.mode = "truncate"
    code, _, err = run(capsys, "models", "fetch", str(path), "--state-dir", str(state))
    assert code == 69 and "stopped at 100000 bytes" in err and "nothing was installed" in err
    assert installed_files(state) == []
    server.mode = "whole"
    code, _, err = run(capsys, "models", "fetch", str(path), "--state-dir", str(state))
    assert code == 0, err
    assert server.ranges == [None, "bytes=100000-"]  # only the rest was fetched
    assert (state / "models" / "site_model" / "site_model.onnx").read_bytes() == BLOB


def test_a_server_that_ignores_the_range_gives_the_whole_file_again(tmp_path, capsys, server):
    state = tmp_path / "state"
    path = manifest(tmp_path, server.url)
    server.mode = "truncate"
    run(capsys, "models", "fetch", str(path), "--state-dir", str(state))
    server.mode = "ignore-range"
    code, _, err = run(capsys, "models", "fetch", str(path), "--state-dir", str(state))
    assert code == 0, err
    assert (state / "models" / "site_model" / "site_model.onnx").read_bytes() == BLOB


def test_a_wrong_hash_download_is_refused_deleted_and_never_installed(tmp_path, capsys, server):
    state = tmp_path / "state"
    server.mode = "wrong"
    code, _, err = run(capsys, "models", "fetch", str(manifest(tmp_path, server.url)), "--state-dir", str(state))
    assert code == 65 and "sha256" in err and "not installed" in err
    assert installed_files(state) == []
    assert not list((state / "models" / ".downloads").iterdir())


def test_a_download_longer_than_the_manifest_says_is_refused(tmp_path, capsys, server):
    state = tmp_path / "state"
    code, _, err = run(capsys, "models", "fetch", str(manifest(tmp_path, server.url, size=1000)), "--state-dir", str(state))
    assert code == 69 and "manifest says 1000" in err
    assert installed_files(state) == []


def test_a_licence_is_refused_before_any_download_and_accepted_by_its_spdx_id(tmp_path, capsys, server):
    state = tmp_path / "state"
    path = manifest(tmp_path, server.url, licence="AGPL-3.0 (the weights' metadata says so)")
    code, _, err = run(capsys, "models", "fetch", str(path), "--state-dir", str(state))
    assert code == 77 and "--accept-licence AGPL-3.0" in err
    assert server.ranges == [] and installed_files(state) == []
    code, _, err = run(capsys, "models", "fetch", str(path), "--state-dir", str(state), "--accept-licence", "AGPL-3.0")
    assert code == 0, err


def test_install_of_a_manifest_with_a_url_and_no_file_fetches_it(tmp_path, capsys, server):
    state = tmp_path / "state"
    code, out, err = run(capsys, "models", "install", str(manifest(tmp_path, server.url)), "--state-dir", str(state))
    assert code == 0, err
    assert server.ranges == [None]
    assert (state / "models" / "site_model" / "site_model.onnx").read_bytes() == BLOB


def test_fetch_by_name_finds_the_shipped_manifests(tmp_path, capsys):
    code, _, err = run(capsys, "models", "fetch", "no_such_model", "--state-dir", str(tmp_path))
    assert code == 66 and "yolox_nano" in err
    code, _, err = run(capsys, "models", "fetch", "yolox_nano", "--state-dir", str(tmp_path))
    assert code == 69 and "names no url" in err and "--from FILE" in err  # its release asset's sha256 is the maintainer's to record


def test_the_model_docs_point_inside_the_repository():
    from conftest import REPO

    for doc in ("README.md", "TRAINING.md"):
        assert "shared/data" not in (REPO / "models" / doc).read_text(), doc
