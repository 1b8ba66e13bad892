"""Request guards, as plain ASGI middleware (they also cover streaming responses and unknown routes):

- `APIKeyMiddleware`: with keys configured, every request needs `Authorization: Bearer <key>`;
  anything else is a 401 in the error envelope. Keys are compared in constant time.
- `LocalGuardMiddleware`: a server on a loopback address answers only requests whose Host header is
  a loopback name (no DNS rebinding), and refuses requests a browser sends from another origin
  unless that origin was allowed with --cors-origin (no cross-site form posts).

Body size and time limits are in server/limits.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from tunelab.netserve import is_loopback
from tunelab.server.errors import error_response


def _host_name(value: str) -> str:
    """`example.com:8000` -> `example.com`; `[::1]:8000` -> `::1`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def api_key_id(authorization: str | None) -> str | None:
    """A stable, non-secret id of the bearer token a request presented (`key-` and 12 hex digits of
    its SHA-256), for the prediction log: with keys configured it names the key that was accepted;
    without, it still tells clients apart. None when the request had no bearer token."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return "key-" + hashlib.sha256(token.encode()).hexdigest()[:12]


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: Iterable[str], public: Callable[[str, str], bool] | None = None):
        """public(method, path): requests that need no key (the dashboard's page shells and static
        files, which hold no data; their script sends the key with every API call)."""
        self.app = app
        self.keys = [k.encode() for k in keys if k]
        self.public = public

    def _valid(self, presented: str) -> bool:
        token = presented.encode()
        ok = False
        for key in self.keys:  # no early exit: the time taken does not depend on which key matched
            ok |= hmac.compare_digest(token, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or (self.public and self.public(scope["method"], scope["path"])):
            return await self.app(scope, receive, send)
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            response = error_response(
                401, "You didn't provide an API key. Provide it in an Authorization header using Bearer auth "
                     "(Authorization: Bearer YOUR_KEY); with the openai client, pass api_key=.",
                "authentication_error", None, "missing_api_key", {"www-authenticate": "Bearer"})
        elif scheme.lower() != "bearer" or not self._valid(token.strip()):
            shown = (token.strip()[:3] + "*" * 4) if token.strip() else "(empty)"
            response = error_response(
                401, f"Incorrect API key provided: {shown}. Use one of the keys the server was started with "
                     "(tunelab serve --api-key, or TUNELAB_API_KEY).",
                "authentication_error", None, "invalid_api_key", {"www-authenticate": "Bearer"})
        else:
            return await self.app(scope, receive, send)
        await response(scope, receive, send)


class LocalGuardMiddleware:
    def __init__(self, app: ASGIApp, *, check_host: bool, cors_origins: Iterable[str] = ()):
        self.app = app
        self.check_host = check_host
        self.origins = {o.rstrip("/").lower() for o in cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.check_host and host and not is_loopback(_host_name(host)):
            response = error_response(
                403, f"Host {host!r} is not allowed: this server listens on a loopback address and only answers "
                     "requests addressed to localhost. Bind another address with --host to serve others.",
                "permission_error", None, "host_not_allowed")
            return await response(scope, receive, send)
        origin = headers.get("origin")
        if origin and "*" not in self.origins:
            parts = urlsplit(origin.lower())
            same_origin = bool(host) and parts.netloc == host.lower()
            if not same_origin and origin.rstrip("/").lower() not in self.origins:
                response = error_response(
                    403, f"Cross-origin requests from {origin} are not allowed. Start the server with "
                         f"--cors-origin {origin} to allow them.", "permission_error", None, "origin_not_allowed")
                return await response(scope, receive, send)
        await self.app(scope, receive, send)
