"""Typed rows of the store. JSON columns are decoded; timestamps are Unix seconds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Job states, in the order a job moves through them.
VALIDATING = "validating_files"
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
PAUSED = "paused"  # by POST /v1/fine_tuning/jobs/{id}/pause; resume queues it again from its checkpoint
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)


@dataclass
class FileRecord:
    id: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    path: str
    n_rows: int | None
    created_at: int
    expires_at: int | None = None  # uploaded with expires_after: deleted after this second


@dataclass
class JobRecord:
    id: str
    created_at: int
    updated_at: int
    started_at: int | None
    finished_at: int | None
    status: str
    model: str  # as the user asked for it (alias, base name or fine-tuned id)
    base_model: str  # the packaged/local base model it resolves to
    parent_model: str | None  # fine-tuned model continued from, if any
    method: str  # a tunelab.models.meta.Method value
    training_file: str
    validation_file: str | None
    hyperparams: dict[str, Any]
    options: dict[str, Any]
    organization_id: str
    suffix: str | None
    seed: int
    fine_tuned_model: str | None
    result_file: str | None
    error: dict[str, Any] | None
    trained_tokens: int | None
    trained_examples: int | None
    train_seconds: float | None
    cancel_requested: bool
    worker_pid: int | None
    heartbeat_at: float | None
    attempts: int
    enqueued_at: float | None = None  # sub-second, so the queue is first in, first out
    worker_id: str | None = None  # the worker holding a running job (host:pid:tag), on a shared store

    @property
    def legacy_id(self) -> str:
        return "ft-" + self.id.removeprefix("ftjob-")

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class WorkerRecord:
    """A worker process serving a shared (PostgreSQL) store, as it last reported itself."""
    id: str
    host: str
    pid: int
    device: str | None
    launcher: str | None
    status: str  # running | stopped | lost (its lease expired and its job went to another worker)
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    job_id: str | None


@dataclass
class EventRecord:
    id: str
    job_id: str
    seq: int
    created_at: int
    level: str
    message: str
    data: dict[str, Any] | None = None


@dataclass
class CheckpointRecord:
    id: str
    job_id: str
    step: int
    epoch: int
    path: str
    metrics: dict[str, Any]
    created_at: int


@dataclass
class ModelRecord:
    id: str
    created_at: int
    owned_by: str
    base_model: str
    parent_id: str | None
    job_id: str | None
    method: str
    path: str
    labels: list[str] | None
    cumulative_epochs: int
    meta: dict[str, Any] = field(default_factory=dict)


JSON_COLUMNS = {"hyperparams", "options", "error", "data", "metrics", "labels", "meta"}
BOOL_COLUMNS = {"cancel_requested"}


def decode(cls, row) -> Any:
    values = dict(row._mapping)
    for key in list(values):
        if key in JSON_COLUMNS and values[key] is not None:
            values[key] = json.loads(values[key])
        elif key in BOOL_COLUMNS:
            values[key] = bool(values[key])
    return cls(**values)


def encode(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if key in JSON_COLUMNS and value is not None:
            out[key] = json.dumps(value)
        elif key in BOOL_COLUMNS:
            out[key] = int(bool(value))
        else:
            out[key] = value
    return out
