"""What every resource shares: the server's state (store, warm models, batchers, settings), the
list envelope, and small helpers."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict

from tunelab import __version__
from tunelab.errors import InvalidInputError
from tunelab.jobs import paging
from tunelab.server.batching import BatcherRegistry, ModelPool
from tunelab.server.errors import bad_request
from tunelab.store import Store

T = TypeVar("T")
SYSTEM_FINGERPRINT = f"fp_tunelab_{__version__}"


@dataclass
class ServerState:
    store: Store
    pool: ModelPool
    batchers: BatcherRegistry
    max_upload_bytes: int
    api_keys: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    recorder: Any = None
    """tunelab.server.prediction_log.PredictionRecorder: the prediction log and the /metrics counters."""
    metrics: Any = None
    """tunelab.server.metrics.ServerMetrics (None: no /metrics)."""

    def close(self) -> None:
        self.batchers.close()
        self.pool.clear()
        if self.recorder is not None:
            self.recorder.close()  # writes what is still queued


def get_state(request: Request) -> ServerState:
    return request.app.state.tunelab


class RequestModel(BaseModel):
    """Request bodies: unknown fields are refused (400 "Unrecognized request argument"), as OpenAI does."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ResponseModel(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


class ListObject(ResponseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool = False
    # --- tunelab extensions ---
    first_id: str | None = None
    last_id: str | None = None


def page(items: list, *, after: str | None = None, limit: int | None = None, unknown: str = "No item {after}",
         key=lambda item: item.id) -> tuple[list, bool]:
    """tunelab.jobs.paging.page, with a stale `after` cursor answered as a 400 on `after`."""
    try:
        return paging.page(items, after=after, limit=limit, unknown=unknown, key=key)
    except InvalidInputError as exc:
        raise bad_request(exc.message, param="after") from None


def list_of(data: list, has_more: bool = False) -> dict[str, Any]:
    ids = [getattr(d, "id", None) if not isinstance(d, dict) else d.get("id") for d in data]
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None}


def new_request_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


class RequestIdMiddleware:
    """`x-request-id` and `openai-processing-ms` on every answer, as OpenAI sends them: the `openai`
    client shows the id as `response._request_id` (`.request_id` of an error), which code logs to
    report a failed call; the milliseconds are the time until the answer (or a stream) started."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = f"req_{secrets.token_hex(16)}".encode()

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                elapsed = str(round((time.perf_counter() - started) * 1000)).encode()
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id),
                                      (b"openai-processing-ms", elapsed)]
            await send(message)

        await self.app(scope, receive, send_with_id)


def now() -> int:
    return int(time.time())
