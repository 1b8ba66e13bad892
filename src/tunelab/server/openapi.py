"""The HTTP contract as the server really keeps it, for generated clients and fuzzers:

- Every operation of the published OpenAPI description declares the error statuses it can answer,
  each with the error envelope's schema (errors.ErrorResponse), as vLLM does: those every request
  can meet (COMMON: a bad body or parameter, the API key, the host/origin guard, a body too slow or
  too large) and the operation's own (ROUTE_ERRORS). FastAPI's 422 is removed: the server answers
  validation errors with 400 (server/errors.py) and never sends 422.
- Contents other than JSON are declared: a file's bytes (application/octet-stream) and the
  event streams of `stream: true` (text/event-stream).
- `MethodsMiddleware`: OPTIONS is answered with 204 and the methods of the path in `Allow`, and a
  405 lists them all. (Starlette's router answers both from the first route whose path matches,
  so /v1/models/{model} said `Allow: GET` although DELETE is served there too.)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunelab.server.errors import ERROR_DESCRIPTIONS, ErrorDetail, ErrorResponse

COMMON = (400, 401, 403, 408, 413)
"""Statuses any request can get before its route runs (server/limits.py, server/auth.py)."""

INFERENCE = (404, 429, 503)
ROUTE_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("GET", "/v1/models"): (),
    ("GET", "/v1/models/{model}"): (404,),
    ("DELETE", "/v1/models/{model}"): (404, 409),
    ("POST", "/v1/files"): (),
    ("GET", "/v1/files"): (404,),  # `after`: an id that does not exist
    ("GET", "/v1/files/{file_id}"): (404,),
    ("DELETE", "/v1/files/{file_id}"): (404, 409),
    ("GET", "/v1/files/{file_id}/content"): (404,),
    ("POST", "/v1/fine_tuning/jobs"): (404,),
    ("GET", "/v1/fine_tuning/jobs"): (404,),
    ("GET", "/v1/fine_tuning/jobs/{fine_tuning_job_id}"): (404,),
    ("POST", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/cancel"): (404, 409),
    ("POST", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/pause"): (404, 409),
    ("POST", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/resume"): (404, 409),
    ("GET", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events"): (404,),
    ("GET", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"): (404,),
    ("POST", "/v1/fine-tunes"): (404,),
    ("GET", "/v1/fine-tunes"): (),
    ("GET", "/v1/fine-tunes/{fine_tune_id}"): (404,),
    ("POST", "/v1/fine-tunes/{fine_tune_id}/cancel"): (404, 409),
    ("DELETE", "/v1/fine-tunes/{fine_tune_id}"): (403, 404, 409),
    ("GET", "/v1/fine-tunes/{fine_tune_id}/events"): (404,),
    ("POST", "/v1/completions"): INFERENCE,
    ("POST", "/v1/chat/completions"): INFERENCE,
    ("POST", "/v1/labels/score"): INFERENCE,
    ("POST", "/v1/feedback"): (404,),
    ("GET", "/v1/tunelab/stats"): (),
}
"""Each operation's own error statuses. An operation missing here gets COMMON, and 404 when its
path has parameters; tests/server/test_openapi_contract.py fails until it is added."""

EVENT_STREAMS = {("POST", "/v1/completions"), ("POST", "/v1/chat/completions"),
                 ("GET", "/v1/fine-tunes/{fine_tune_id}/events")}
BINARY = {("GET", "/v1/files/{file_id}/content")}


def error_statuses(method: str, path: str) -> tuple[int, ...]:
    own = ROUTE_ERRORS.get((method, path))
    if own is None:
        own = (404,) if "{" in path else ()
    return tuple(sorted(set(COMMON) | set(own)))


def describe(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's generated description, rewritten as described in the module docstring."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorDetail, ErrorResponse):
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            key = (method.upper(), path)
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in error_statuses(*key):
                entry: dict[str, Any] = {"description": ERROR_DESCRIPTIONS[status],
                                         "content": {"application/json": {"schema": ref}}}
                if status in (429, 503):
                    entry["headers"] = {"Retry-After": {"description": "Seconds to wait before sending it again.",
                                                        "schema": {"type": "integer"}}}
                responses[str(status)] = entry
            ok = responses.setdefault("200", {"description": "Successful Response"})
            if key in BINARY:
                ok["content"] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            if key in EVENT_STREAMS:
                ok.setdefault("content", {})["text/event-stream"] = {
                    "schema": {"type": "string", "description": "Server-sent events (`stream: true`): `data: {json}` "
                                                                "lines, ending with `data: [DONE]`."}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve `describe(...)` of FastAPI's description at /openapi.json (and in /docs)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(generate())
        return app.openapi_schema

    app.openapi = openapi


_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """The methods some route serves at the request's path (empty: no route has this path)."""
    methods: set[str] = set()
    for route in _flat(routes):
        match, _ = route.matches(scope)
        if match != Match.NONE:  # PARTIAL: the path matches, the method does not
            methods |= set(getattr(route, "methods", None) or ())
    if not methods:
        return []
    methods.add("OPTIONS")
    return sorted(methods, key=lambda m: _ORDER.index(m) if m in _ORDER else len(_ORDER))


def _flat(routes: list[BaseRoute]) -> list:
    """Every route, also those of included routers (FastAPI keeps an included router as one entry)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # a FastAPI that flattens included routers into the app's list itself
        return list(routes)
    return list(iter_route_contexts(routes))


class MethodsMiddleware:
    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute]):
        self.app = app
        self.routes = routes  # the app's own list: routes added later are seen too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(self.routes, scope)
            if methods:
                return await Response(status_code=204, headers={"allow": ", ".join(methods)})(scope, receive, send)
            return await self.app(scope, receive, send)

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = allowed_methods(self.routes, scope)
                if methods:
                    MutableHeaders(scope=message)["allow"] = ", ".join(methods)
            await send(message)

        await self.app(scope, receive, send_with_allow)
