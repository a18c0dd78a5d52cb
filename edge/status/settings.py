"""The `http:` section of the building config: where the daemon serves /healthz, /metrics and
the live status page, and the guard that keeps it off the network without a token.

`HttpSettings`, not `StatusServer`: `edge.status.server.StatusServer` is the server itself.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from edge.config.settings import Secret, Strict


class HttpSettings(Strict):
    """The daemon's HTTP server: /healthz, /metrics and the live status page (read-only)."""

    enabled: bool = Field(True, description="Serve health, metrics and the status page.")
    bind: str = Field("127.0.0.1", min_length=1, description="Address to listen on; anything but loopback needs beyond_localhost and a token.")
    port: int = Field(8780, ge=0, le=65535, description="TCP port; 0 picks a free one (written to STATE_DIR/http.json).")
    beyond_localhost: bool = Field(False, description="Allow binding beyond loopback; every request then needs the token.")
    token: Secret | None = Field(None, description="Bearer token (or Basic password) required beyond localhost; compared in constant time.")

    @model_validator(mode="after")
    def _guarded(self) -> "HttpSettings":
        loopback = self.bind in ("127.0.0.1", "::1", "localhost") or self.bind.startswith("127.")
        if not loopback and not self.beyond_localhost:
            raise ValueError(f"bind {self.bind!r} is beyond localhost: set beyond_localhost: true and a token")
        if self.beyond_localhost and self.token is None:
            raise ValueError("beyond_localhost needs a token ({file: ...}): nothing unauthenticated may reach the building")
        return self


SECTIONS = {"http": (HttpSettings, Field(HttpSettings(), description="Health, metrics and the status page, on 127.0.0.1 by default."))}
"""The building config's sections this feature owns (edge/feature.py)."""
