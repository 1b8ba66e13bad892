"""What a request may cost before it reaches a route, as one ASGI middleware (`RequestLimits`):

- Size. File uploads (POST /v1/files, and the raw tables the dashboard builds files from) may be
  up to `max_upload_bytes`; every other body only `max_body_bytes` (2 MB by default): a prompt of
  10 MB cannot fit any model, yet tokenizing it held the model's process, and so every other
  caller, for seconds. Refused with 413 at once when
  Content-Length says so, otherwise as soon as the running count passes the limit.
- Time to arrive. A client that trickles its body holds a connection, a task and, at shutdown, the
  whole server: a JSON body must arrive within `read_timeout_s`, and an upload may pause no
  longer than that between two chunks; 408 otherwise, and the connection is closed.
  (uvicorn bounds the headers: tunelab.netserve.)
- Hostile JSON. JSON bodies are parsed with tunelab.data.safejson first: nesting thousands deep,
  numbers of ten thousand digits or beyond a float's range, and lone UTF-16 surrogates in strings
  (valid JSON escapes, but not text: the tokenizer, the store and the response all fail on them)
  are a 400 naming the field, instead of a 500 or "There was an error parsing the body".
  What is not JSON at all is left to FastAPI, whose 400 says where the syntax breaks.
- Time to answer. The rest of the request runs under `request_timeout_s`
  (tunelab.server.batching.deadline): waiting for a model to load, in its queue and for its batch
  ends in a 503 with Retry-After rather than a client's own timeout.
"""

from __future__ import annotations

import asyncio
import json

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunelab.data import safejson
from tunelab.server.batching import deadline
from tunelab.server.errors import error_response

DEFAULT_MAX_BODY_MB = 2.0
DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_REQUEST_TIMEOUT_S = 60.0
UPLOAD_ROUTES = {("POST", "/v1/files"), ("POST", "/ui/api/datasets/inspect"), ("POST", "/ui/api/datasets/build")}


class BodyError(HTTPException):
    """A body refused while the route was reading it (413, 408); the error handler sends the envelope."""

    def __init__(self, status: int, detail: str, code: str):
        super().__init__(status, detail, headers={"connection": "close"})
        self.code = code


def _size(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n} bytes"


def too_large(limit: int, upload: bool) -> BodyError:
    flag = "--max-upload-mb" if upload else "--max-body-mb"
    return BodyError(413, f"The request body is larger than this server's limit of {_size(limit)} "
                          f"(tunelab serve {flag}).", "request_too_large")


def too_slow(seconds: float, upload: bool) -> BodyError:
    what = "paused for longer than" if upload else "took longer than"
    return BodyError(408, f"The request body {what} {seconds:g} s to arrive (tunelab serve --read-timeout); "
                          "send it in one go.", "request_timeout")


def _is_json(headers: Headers) -> bool:
    kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int,
                 read_timeout_s: float | None = DEFAULT_READ_TIMEOUT_S,
                 request_timeout_s: float | None = DEFAULT_REQUEST_TIMEOUT_S):
        self.app = app
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_body_bytes = min(int(max_body_bytes), self.max_upload_bytes)
        self.read_timeout_s = read_timeout_s
        self.request_timeout_s = request_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        upload = (scope["method"], scope["path"].rstrip("/")) in UPLOAD_ROUTES
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _send_error(too_large(limit, upload), scope, receive, send)
        if upload:
            receive = self._streamed(receive, limit)
        else:
            try:
                body = await self._read_body(receive, limit)
            except BodyError as exc:
                return await _send_error(exc, scope, receive, send)
            if body and _is_json(headers):
                try:
                    safejson.loads(body)
                except json.JSONDecodeError:
                    pass  # FastAPI's own 400 says where the syntax breaks
                except safejson.JSONValueError as exc:
                    response = error_response(400, f"The JSON body of your request was refused: {exc.message}.",
                                              "invalid_request_error", exc.field, "invalid_json")
                    return await response(scope, receive, send)
            receive = _replay(body, receive)
        with deadline(self.request_timeout_s):
            await self.app(scope, receive, send)

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        loop = asyncio.get_running_loop()
        end = None if self.read_timeout_s is None else loop.time() + self.read_timeout_s
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), None if end is None else max(0.0, end - loop.time()))
            except TimeoutError:
                raise too_slow(self.read_timeout_s, upload=False) from None
            if message["type"] == "http.disconnect":
                raise BodyError(400, "The client disconnected before sending the whole body.", "client_disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit, upload=False)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _streamed(self, receive: Receive, limit: int) -> Receive:
        seen = 0
        timeout = self.read_timeout_s

        async def limited() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise too_slow(timeout, upload=True) from None  # FastAPI re-raises HTTPExceptions from body parsing
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit, upload=True)
            return message

        return limited


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then whatever comes next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(exc: BodyError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(exc.status_code, exc.detail, "invalid_request_error", None, exc.code, exc.headers)
    await response(scope, receive, send)
