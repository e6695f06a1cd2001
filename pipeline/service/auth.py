"""Who may use the service: loopback without a token; any other address only with one.

The token comes in `Authorization: Bearer TOKEN` or, for what a browser cannot send headers
with (an <img> of the live view), a `token` query parameter. It is compared in constant time.
/healthz stays open so a load balancer or orchestrator can probe it.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.errors import ConfigError

OPEN_PATHS = {"/healthz"}


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def read_token(path: str | Path | None, host: str) -> str | None:
    """The token from `path`, or None on loopback without one. Refuses to expose the service
    beyond loopback without a token (ConfigError)."""
    if path is None:
        if not is_loopback(host):
            raise ConfigError(
                f"binding {host} exposes the service beyond this machine: give --token-file FILE "
                "(every route but /healthz then needs Authorization: Bearer TOKEN)"
            )
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}") from None
    if len(token) < 16:
        raise ConfigError(f"the token in {path} is too short: use at least 16 characters")
    return token


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class TokenAuth:
    """ASGI middleware: 401 to every HTTP request without the token, except the open paths.
    (Plain ASGI rather than BaseHTTPMiddleware, which would wrap every MJPEG chunk.)"""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        header = request.headers.get("authorization", "")
        given = (
            header[7:].strip() if header.lower().startswith("bearer ") else request.query_params.get("token")
        )
        if token_matches(given, self.token):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"error": "missing or wrong token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)
