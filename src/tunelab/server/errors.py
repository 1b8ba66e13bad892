"""One error envelope for every failure, as OpenAI sends it:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "prompt", "code": null}}

Library errors map by type: InvalidInputError -> 400, NotFoundError -> 404, ConflictError -> 409,
ModelUnavailableError (weights not installed: asking again does not help) -> 404,
OverloadedError -> 429, TemporarilyUnavailableError -> 503. Request validation (FastAPI's 422)
becomes 400 in the same envelope, unknown routes 404, oversize bodies 413, bodies that arrive too
slowly 408. Only an unexpected exception (a bug) is a 500.

Error responses carry `x-should-retry: false`, which the `openai` client obeys (it would otherwise
retry 408s, 409s and 5xxs, and these do not go away by asking again), except the temporary ones
(429, 503), which say `x-should-retry: true` and `Retry-After: <seconds>`: the client then retries
by itself, after the wait the server asked for.

`ErrorResponse` is the envelope's schema; server/openapi.py declares it for every error status of
every operation.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunelab.errors import (
    ConflictError, InvalidInputError, ModelUnavailableError, NotFoundError, OverloadedError,
    TemporarilyUnavailableError, TunelabError,
)

log = logging.getLogger("tunelab.server")

NO_RETRY = {"x-should-retry": "false"}


def retry_headers(retry_after: float) -> dict[str, str]:
    """What tells a client (the openai one obeys both) to send a request again, and when."""
    return {"x-should-retry": "true", "retry-after": str(max(0, math.ceil(retry_after)))}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The body of every error answer, as OpenAI sends it."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "Invalid request: malformed JSON, or a missing or invalid parameter (`error.param` names it).",
    401: "Missing or wrong API key (only when the server was started with --api-key).",
    403: "Refused: a Host or browser Origin this server does not answer, or an operation base models do not allow.",
    404: "No such object, model or URL; or a model whose weights are not installed.",
    405: "This method is not allowed on this path (`Allow` lists those that are).",
    408: "The request's body took too long to arrive (tunelab serve --read-timeout).",
    409: "The object's current state forbids the operation.",
    413: "The request body is larger than this server accepts (--max-body-mb; --max-upload-mb for files).",
    429: "Too many prompts are waiting for this model (--max-queue); send the request again after `Retry-After` s.",
    503: "Temporarily unavailable: the request timed out (--request-timeout), or the model's process failed; "
         "send it again after `Retry-After` seconds.",
}


class APIError(Exception):
    """An error with the exact status, type, param and code to send."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = {**(retry_headers(retry_after) if retry_after is not None else {}), **(headers or {})}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(404, message, param=param, code=code)


def model_not_found(model: str, param: str = "model") -> APIError:
    return APIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                    param=param, code="model_not_found")


def envelope(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(status: int, message: str, type: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(envelope(message, type, param, code), status_code=status,
                        headers={**NO_RETRY, **(headers or {})})


def from_tunelab_error(exc: TunelabError, param: str | None = None) -> APIError:
    """The library's typed error as the API error it stands for."""
    message = exc.render()
    if isinstance(exc, InvalidInputError):
        return APIError(400, message, param=param)
    if isinstance(exc, NotFoundError):
        return APIError(404, message, param=param, code="not_found")
    if isinstance(exc, ConflictError):
        return APIError(409, message, param=param, code="conflict")
    if isinstance(exc, ModelUnavailableError):
        return APIError(404, message, param=param, code="model_not_available")
    if isinstance(exc, OverloadedError):
        return APIError(429, message, type="rate_limit_error", param=param, code=exc.code,
                        retry_after=exc.retry_after)
    if isinstance(exc, TemporarilyUnavailableError):
        return APIError(503, message, type="server_error", param=param, code=exc.code, retry_after=exc.retry_after)
    return APIError(400, message, param=param)


_STATUS_TYPES = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", "method_not_allowed"),
    408: ("invalid_request_error", "request_timeout"),
    413: ("invalid_request_error", "request_too_large"),
}


def _model_names(cls: type = BaseModel) -> set[str]:
    names: set[str] = set()
    for sub in cls.__subclasses__():
        names |= {sub.__name__} | _model_names(sub)
    return names


def _param_of(loc: tuple) -> str | None:
    """`method.type`, never `method.MethodIn.type`: pydantic names the model member of a union
    (`MethodIn | Literal[...]`) in the location, by its class name. Indexes: `messages[0].role`."""
    models = _model_names() if any(isinstance(p, str) and p[:1].isupper() for p in loc) else set()
    param = ""
    for p in loc:
        if p in ("body", "query", "path", "header") or p in models:
            continue
        # a list index as OpenAI writes it, and as the services' own errors do: messages[0].role
        param += f"[{p}]" if isinstance(p, int) and param else f".{p}" if param else str(p)
    return param or None


_UNION_MEMBERS = {
    "str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
    "list[str]": "an array of strings", "list[int]": "an array of integers",
    "list[list[int]]": "an array of arrays of integers", "list[dict[str,any]]": "an array of content parts",
}


def _union_member(part: object) -> str | None:
    """pydantic names the member of a union an error is about by its type ('str', 'list[int]',
    "literal['auto']"); field names never look like that."""
    if not isinstance(part, str):
        return None
    if part in _UNION_MEMBERS:
        return _UNION_MEMBERS[part]
    if part.startswith("literal[") and part.endswith("]"):
        return " or ".join(part[len("literal["):-1].split(","))
    if "[" in part:
        return part
    return None


def _union_message(errors: list[dict]) -> tuple[str, str | None] | None:
    """One sentence for a value that matched no member of a union (`prompt: 123`), instead of
    pydantic's first member's complaint under a param such as 'prompt.str'."""
    loc = tuple(errors[0].get("loc", ()))
    at = next((i for i, part in enumerate(loc) if _union_member(part)), None)
    if at is None:
        return None
    field = loc[:at]
    expected: list[str] = []
    for error in errors:
        other = tuple(error.get("loc", ()))
        if other[:at] == field and len(other) > at:
            member = _union_member(other[at])
            if member and member not in expected:
                expected.append(member)
    param = _param_of(field)
    value = errors[0].get("input")
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    wanted = expected[0] if len(expected) == 1 else ", ".join(expected[:-1]) + " or " + expected[-1]
    return f"Invalid type for '{param}': expected {wanted}, but got {shown}.", param


NOT_SUPPORTED = {
    "audio": "text only", "modalities": "text only", "functions": "no functions or tools",
    "function_call": "no functions or tools", "moderation": "there is no moderation model",
    "prediction": "no predicted outputs", "prompt_cache_options": "there is no prompt cache",
    "prompt_cache_retention": "there is no prompt cache",
    "reasoning_effort": "the models do not reason in hidden tokens", "verbosity": "no verbosity control",
    "web_search_options": "no web search",
}
"""OpenAI parameters that no request model of tunelab has (docs/openai-compatibility.md: refused),
with the reason, instead of "Unrecognized request argument" as for a name OpenAI does not know."""


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """FastAPI's list of validation errors as one sentence, OpenAI style."""
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    first = errors[0]
    kind = first.get("type", "")
    loc = tuple(first.get("loc", ()))
    param = _param_of(loc)
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return ("We could not parse the JSON body of your request: " + (detail or "invalid JSON") +
                ". The API expects a JSON object; check that the body is valid JSON and that "
                "Content-Type is application/json."), None
    if kind == "missing":
        if param is None:
            return "The request body is missing; the API expects a JSON object.", None
        return f"Missing required parameter: '{param}'.", param
    if kind == "extra_forbidden":
        if param in NOT_SUPPORTED:
            return f"{param} is not supported by tunelab: {NOT_SUPPORTED[param]}.", param
        return f"Unrecognized request argument supplied: {param}", param
    if kind in ("model_attributes_type", "dict_type") and param is None:
        return "The request body must be a JSON object.", None
    union = _union_message(errors)
    if union is not None:
        return union
    msg = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return (f"Invalid value for '{param}': {msg}{more}." if param else f"{msg}{more}."), param


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError):
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)

    @app.exception_handler(TunelabError)
    async def _tunelab_error(_request: Request, exc: TunelabError):
        api = from_tunelab_error(exc)
        return error_response(api.status, api.message, api.type, api.param, api.code, api.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        message, param = validation_message(exc)
        return error_response(400, message, "invalid_request_error", param, None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        type_, code = _STATUS_TYPES.get(exc.status_code, ("invalid_request_error", None))
        if exc.status_code == 404 and exc.detail in (None, "Not Found"):
            message = f"Unknown request URL: {request.method} {request.url.path}."
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        elif exc.status_code == 413:
            message = str(exc.detail) if exc.detail and exc.detail != "Content Too Large" else "Request too large."
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, type_, getattr(exc, "param", None),
                              getattr(exc, "code", None) or code, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("Unhandled error in %s %s", request.method, request.url.path)
        return error_response(500, f"The server had an error while processing your request "
                                   f"({type(exc).__name__}: {exc}). This is a bug in tunelab; please report it.",
                              "server_error", None, None)
