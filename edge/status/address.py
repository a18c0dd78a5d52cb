"""Where the status server says it listens: STATE_DIR/http.json (or the runtime dir's), so `edge status`
finds the server even on a port the kernel picked. Kept apart from the server so `edge status` reads it
without importing aiohttp."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from edge.config.building import BuildingConfig

log = structlog.get_logger("edge.status")

ENDPOINT_FILE = "http.json"


def endpoint_path(state_dir: Path) -> Path:
    return state_dir / ENDPOINT_FILE


def endpoint_places(config: BuildingConfig) -> list[Path]:
    """Where the address file may be, in order: the runtime dir (tmpfs), then the state dir."""
    return [endpoint_path(place) for place in config.runtime_paths]


def announce(places: list[Path], document: dict[str, Any]) -> Path | None:
    """Write the address file to the first place that takes it (blocking); None, logged, when none does."""
    for path in places:
        try:
            _write_endpoint(path, document)
            return path
        except OSError as refused:
            log.error("status address not written here", path=str(path), error=f"{type(refused).__name__}: {refused}")
    return None


def _write_endpoint(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document))
    os.replace(temporary, path)
