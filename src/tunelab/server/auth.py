"""Request guards, as plain ASGI middleware (they also cover streaming responses and unknown routes):

- `APIKeyMiddleware`: with keys configured, every request needs `Authorization: Bearer <key>`;
  anything else is a 401 in the error envelope. Keys are compared in constant time.
- `BodyLimitMiddleware`: bodies over the limit are refused with 413, at once when Content-Length
  says so, otherwise as soon as the running count passes the limit (nothing is buffered first).
- `LocalGuardMiddleware`: a server on a loopback address answers only requests whose Host header is
  a loopback name (no DNS rebinding), and refuses requests a browser sends from another origin
  unless that origin was allowed with --cors-origin (no cross-site form posts).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunelab.server.errors import error_response

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.") or host.endswith(".localhost")


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
    def __init__(self, app: ASGIApp, keys: Iterable[str]):
        self.app = app
        self.keys = [k.encode() for k in keys if k]

    def _valid(self, presented: str) -> bool:
        token = presented.encode()
        ok = False
        for key in self.keys:  # no early exit: the time taken does not depend on which key matched
            ok |= hmac.compare_digest(token, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys:
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


class RequestTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"The request body is larger than this server's limit of {_size(limit)} "
                              "(tunelab serve --max-upload-mb).")


def _size(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            exc = RequestTooLarge(self.max_bytes)
            response = error_response(413, exc.detail, "invalid_request_error", None, "request_too_large",
                                      {"connection": "close"})
            return await response(scope, receive, send)
        seen = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLarge(limit)  # FastAPI re-raises HTTPExceptions from body parsing
            return message

        await self.app(scope, limited_receive, send)


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
