"""The legacy `/v1/fine-tunes` API (what `openai api fine_tunes.create` and openai-python < 1.0
called), in the field order of its documentation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunelab.server.common import RequestModel, ResponseModel
from tunelab.server.files.protocol import FileObject


class FineTuneCreateRequest(RequestModel):
    training_file: str
    validation_file: str | None = None
    model: str | None = "curie"
    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    prompt_loss_weight: float | None = None
    compute_classification_metrics: bool | None = False
    classification_n_classes: int | None = Field(None, ge=1)
    classification_positive_class: str | None = None
    classification_betas: list[float] | None = None
    suffix: str | None = None


class FineTuneEvent(ResponseModel):
    object: Literal["fine-tune-event"] = "fine-tune-event"
    created_at: int
    level: str
    message: str


class FineTuneHyperparams(ResponseModel):
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    n_epochs: int | None = None
    prompt_loss_weight: float | None = None
    compute_classification_metrics: bool | None = None
    classification_n_classes: int | None = None
    classification_positive_class: str | None = None
    classification_betas: list[float] | None = None
    # --- tunelab extensions ---
    method: str | None = None
    seed: int | None = None
    lora: bool | None = None


class FineTune(ResponseModel):
    id: str
    object: Literal["fine-tune"] = "fine-tune"
    model: str
    created_at: int
    events: list[FineTuneEvent] | None = None
    fine_tuned_model: str | None = None
    hyperparams: FineTuneHyperparams
    organization_id: str
    result_files: list[FileObject]
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    validation_files: list[FileObject]
    training_files: list[FileObject]
    updated_at: int
    # --- tunelab extensions ---
    job_id: str | None = None
    base_model: str | None = None
    parent_model: str | None = None
    cumulative_epochs: int | None = None
    trained_tokens: int | None = None
    train_seconds: float | None = None
    error: dict | None = None
