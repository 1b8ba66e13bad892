"""`/v1/fine_tuning/jobs` requests and objects, in OpenAI's field order
(openai.types.fine_tuning: JobCreateParams, FineTuningJob, FineTuningJobEvent, FineTuningJobCheckpoint)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictFloat, StrictInt

from tunelab.server.common import RequestModel, ResponseModel

Auto = Literal["auto"]


class HyperparametersIn(RequestModel):
    """OpenAI's three, each a value or "auto" (the model's default). Any other tunelab hyperparameter
    (prompt_loss_weight, lora, lora_r, class_weights, max_length, shuffle, warmup_ratio, ...) may be
    added here too; unknown names are refused with the list of known ones."""

    model_config = ConfigDict(extra="allow")
    # strict, as OpenAI's types: `true` is not 1 epoch, nor "3" three
    batch_size: Auto | StrictInt | None = None
    learning_rate_multiplier: Auto | StrictFloat | None = None
    n_epochs: Auto | StrictInt | None = None


class SupervisedIn(RequestModel):
    hyperparameters: HyperparametersIn | None = None


class MethodIn(RequestModel):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedIn | None = None
    dpo: dict[str, Any] | None = None
    reinforcement: dict[str, Any] | None = None


class JobCreateRequest(RequestModel):
    model: str
    training_file: str
    hyperparameters: HyperparametersIn | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: MethodIn | Literal["auto", "classifier", "lm"] | None = None
    """OpenAI's method object ({"type": "supervised", ...}), or tunelab's training method as a string:
    "classifier" (a classification head), "lm" (language modelling) or "auto" (from the data)."""
    seed: int | None = None
    suffix: str | None = None
    validation_file: str | None = None
    # --- tunelab extensions ---
    compute_classification_metrics: bool = False
    classification_n_classes: int | None = Field(None, ge=1)
    classification_positive_class: str | None = None
    classification_betas: list[float] | None = None


class JobError(ResponseModel):
    code: str
    message: str
    param: str | None = None


class JobHyperparameters(ResponseModel):
    batch_size: Auto | int | None = None
    learning_rate_multiplier: Auto | float | None = None
    n_epochs: Auto | int | None = None


class SupervisedOut(ResponseModel):
    hyperparameters: JobHyperparameters


class JobMethod(ResponseModel):
    type: Literal["supervised"] = "supervised"
    supervised: SupervisedOut


class FineTuningJob(ResponseModel):
    id: str
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: JobHyperparameters
    model: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    organization_id: str
    result_files: list[str]
    seed: int
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused"]
    """OpenAI's statuses, and `paused` (POST …/pause; POST …/resume queues the job again)."""
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: JobMethod | None = None
    # --- tunelab extensions ---
    legacy_id: str
    """The same job as the legacy API names it (`ft-…`); both ids are accepted everywhere."""
    base_model: str
    training_method: str
    """classifier or lm."""
    hyperparameters_full: dict[str, Any]
    """Every tunelab hyperparameter of the job, resolved."""
    classification: dict[str, Any]
    """compute_classification_metrics, classification_n_classes, classification_positive_class,
    classification_betas and the labels found in the training data."""
    started_at: int | None = None
    updated_at: int
    trained_examples: int | None = None
    train_seconds: float | None = None
    final_metrics: dict[str, Any] | None = None
    notices: list[str] = []
    """Notes from validation when the job was created (e.g. how an alias was mapped)."""


class FineTuningJobEvent(ResponseModel):
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    data: dict[str, Any] | None = None
    type: Literal["message", "metrics"] = "message"


class CheckpointMetrics(ResponseModel):
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(ResponseModel):
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    step_number: int
    # --- tunelab extensions ---
    epoch: int
    all_metrics: dict[str, Any]
    """Every column of the results row at that step (classification metrics included)."""
