"""Jobs, events, checkpoints, files and models as plain dicts, in OpenAI's field order: built here
once, printed as JSON by the CLI and validated into the server's protocol models.

Two shapes of a job: the current one (`/v1/fine_tuning/jobs`) and the legacy one (`/v1/fine-tunes`,
`tunelab api fine_tunes.get`). Every hyperparameter is read through the job's typed plan, so both
shapes show the numbers the runner trains with."""

from __future__ import annotations

import re
from typing import Any

from tunelab.errors import NotFoundError
from tunelab.models.registry import ALIASES, alias_target, list_base_models
from tunelab.store import CheckpointRecord, EventRecord, FileRecord, JobRecord, ModelRecord, Store
from tunelab.training.plan import JobPlan, JobStats

LEGACY_STATUS = {"validating_files": "pending", "queued": "pending"}
BASE_CREATED = 1704067200  # base models have no creation in this store; a fixed date keeps lists stable
BASE_OWNER = "tunelab"
CLASSIFICATION_KEYS = ("compute_classification_metrics", "classification_n_classes",
                       "classification_positive_class", "classification_betas")


# Fields whose value is data (free-form dicts), not a nested object: kept as they are by drop_none.
DATA_FIELDS = frozenset({"error", "data", "metadata", "final_metrics", "all_metrics", "hyperparameters_full",
                         "classification"})


def drop_none(value: Any) -> Any:
    """Without unset (None) fields, in nested objects too: what the CLI prints, as OpenAI's
    objects omit unset fields. The insides of DATA_FIELDS are left alone."""
    if isinstance(value, dict):
        return {k: (v if k in DATA_FIELDS else drop_none(v)) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


# -- jobs ------------------------------------------------------------------------------------------

def _classification(plan: JobPlan) -> dict[str, Any]:
    return {k: getattr(plan.classification_options, k) for k in CLASSIFICATION_KEYS}


def job_view(job: JobRecord, notices: list[str] | None = None) -> dict[str, Any]:
    """The current shape (openai.types.fine_tuning.FineTuningJob, then tunelab's extensions)."""
    plan = JobPlan.from_job(job)
    hp = plan.hyperparameters
    hyper = {"batch_size": plan.batch_size, "learning_rate_multiplier": hp.learning_rate_multiplier,
             "n_epochs": plan.n_epochs}
    error = None
    if job.error:
        error = {"code": str(job.error.get("code") or "error"), "message": str(job.error.get("message") or ""),
                 "param": job.error.get("param")}
    return {
        "id": job.id, "created_at": job.created_at, "error": error, "fine_tuned_model": job.fine_tuned_model,
        "finished_at": job.finished_at, "hyperparameters": hyper, "model": job.model,
        "object": "fine_tuning.job", "organization_id": job.organization_id,
        "result_files": [job.result_file] if job.result_file else [], "seed": hp.seed, "status": job.status,
        "trained_tokens": job.trained_tokens, "training_file": job.training_file,
        "validation_file": job.validation_file, "estimated_finish": None, "integrations": None,
        "metadata": (job.options or {}).get("metadata"),
        "method": {"type": "supervised", "supervised": {"hyperparameters": dict(hyper)}},
        "legacy_id": job.legacy_id, "base_model": job.base_model, "training_method": plan.method.value,
        "hyperparameters_full": hp.to_dict(),
        "classification": {**_classification(plan), "classification": plan.classification, "labels": plan.labels},
        "started_at": job.started_at, "updated_at": job.updated_at, "trained_examples": job.trained_examples,
        "train_seconds": job.train_seconds, "final_metrics": JobStats.from_job(job).final_metrics or None,
        "notices": list(notices or []),
    }


def legacy_job_view(store: Store, job: JobRecord, *, with_events: bool = False) -> dict[str, Any]:
    """The legacy shape: id `ft-…`, status `pending` until it runs, files inlined, events oldest first."""
    plan = JobPlan.from_job(job)
    hp = plan.hyperparameters
    classification = {k: v for k, v in _classification(plan).items() if v not in (None, False, [])}
    return {
        "id": job.legacy_id, "object": "fine-tune", "model": job.model, "created_at": job.created_at,
        "events": [legacy_event_view(e, plan.n_epochs) for e in store.list_events(job.id)] if with_events else None,
        "fine_tuned_model": job.fine_tuned_model,
        "hyperparams": {"batch_size": plan.batch_size, "learning_rate_multiplier": hp.learning_rate_multiplier,
                        "n_epochs": plan.n_epochs, "prompt_loss_weight": hp.prompt_loss_weight, **classification,
                        "method": plan.method.value, "seed": hp.seed, "lora": hp.lora or None},
        "organization_id": job.organization_id, "result_files": _file_views(store, job.result_file),
        "status": LEGACY_STATUS.get(job.status, job.status),
        "validation_files": _file_views(store, job.validation_file),
        "training_files": _file_views(store, job.training_file), "updated_at": job.updated_at,
        "job_id": job.id, "base_model": job.base_model, "parent_model": job.parent_model,
        "cumulative_epochs": plan.cumulative_epochs, "trained_tokens": job.trained_tokens,
        "train_seconds": job.train_seconds, "error": job.error,
    }


# -- events and checkpoints ------------------------------------------------------------------------

def event_view(event: EventRecord) -> dict[str, Any]:
    data = event.data or None
    level = {"warning": "warn"}.get(event.level, event.level)
    return {"id": event.id, "created_at": event.created_at,
            "level": level if level in ("info", "warn", "error") else "info", "message": event.message,
            "object": "fine_tuning.job.event", "data": data,
            # train_loss: OpenAI's key (training.runner adds it); loss: events of older stores
            "type": "metrics" if data and "step" in data and ("train_loss" in data or "loss" in data) else "message"}


def legacy_event_view(event: EventRecord, n_epochs: int | None = None) -> dict[str, Any]:
    return {"object": "fine-tune-event", "created_at": event.created_at, "level": event.level,
            "message": legacy_message(event, n_epochs)}


_LEGACY_TEXTS = (
    (re.compile(r"^Created fine-tuning job: ftjob-(\w+)$"), lambda m, n: f"Created fine-tune: ft-{m[1]}"),
    (re.compile(r"^Job enqueued\."), lambda m, n: "Fine-tune enqueued"),
    (re.compile(r"^Fine-tuning job started\.$"), lambda m, n: "Fine-tune started"),
    (re.compile(r"^Resuming fine-tuning job from its last checkpoint\.$"), lambda m, n: "Fine-tune resumed"),
    (re.compile(r"^Completed epoch (\d+); checkpoint saved at step \d+\.$"),
     lambda m, n: f"Completed epoch {m[1]}/{n}" if n else f"Completed epoch {m[1]}"),
    (re.compile(r"^New fine-tuned model created: (.+)$"), lambda m, n: f"Uploaded model: {m[1]}"),
    (re.compile(r"^Job succeeded\.$"), lambda m, n: "Fine-tune succeeded"),
    (re.compile(r"^Job cancelled"), lambda m, n: "Fine-tune cancelled"),
    (re.compile(r"^Job paused\b"), lambda m, n: "Fine-tune paused"),
    (re.compile(r"^Job failed: (.+)$", re.S), lambda m, n: f"Fine-tune failed: {m[1]}"),
)


def legacy_message(event: EventRecord, n_epochs: int | None = None) -> str:
    """An event's text as the legacy API and CLI wrote it ("Fine-tune enqueued", "Fine-tune started",
    "Completed epoch 1/4", "Uploaded model: …", "Fine-tune succeeded"); other texts as they are."""
    for pattern, legacy in _LEGACY_TEXTS:
        match = pattern.match(event.message)
        if match:
            return legacy(match, n_epochs)
    return event.message


def checkpoint_view(job: JobRecord, checkpoint: CheckpointRecord) -> dict[str, Any]:
    m = checkpoint.metrics or {}
    return {
        "id": checkpoint.id, "created_at": checkpoint.created_at,
        "fine_tuned_model_checkpoint": f"{job.fine_tuned_model or job.id}:ckpt-step-{checkpoint.step}",
        "fine_tuning_job_id": job.id,
        "metrics": {"full_valid_loss": m.get("full_valid_loss"),
                    "full_valid_mean_token_accuracy": m.get("full_valid_mean_token_accuracy"),
                    "step": checkpoint.step, "train_loss": m.get("training_loss"),
                    "train_mean_token_accuracy": m.get("training_token_accuracy"),
                    "valid_loss": m.get("validation_loss"),
                    "valid_mean_token_accuracy": m.get("validation_token_accuracy")},
        "object": "fine_tuning.job.checkpoint", "step_number": checkpoint.step, "epoch": checkpoint.epoch,
        "all_metrics": m,
    }


# -- files and models ------------------------------------------------------------------------------

def file_view(record: FileRecord) -> dict[str, Any]:
    return {"id": record.id, "bytes": record.bytes, "created_at": record.created_at, "filename": record.filename,
            "object": "file", "purpose": record.purpose, "status": "processed", "expires_at": record.expires_at,
            "status_details": None, "n_rows": record.n_rows, "sha256": record.sha256}


def _file_views(store: Store, *file_ids: str | None) -> list[dict[str, Any]]:
    out = []
    for file_id in filter(None, file_ids):
        try:
            out.append(file_view(store.get_file(file_id)))
        except NotFoundError:
            pass  # deleted since; the job still names it by id
    return out


def model_view(record: ModelRecord) -> dict[str, Any]:
    """A fine-tuned model (openai.types.Model, then tunelab's extensions)."""
    return {"id": record.id, "created": record.created_at, "object": "model", "owned_by": record.owned_by,
            "kind": "fine-tuned", "status": "ready",
            "description": f"{record.method} fine-tuned from {record.parent_id or record.base_model}",
            "base_model": record.base_model, "parent": record.parent_id, "method": record.method,
            "labels": record.labels, "job_id": record.job_id, "cumulative_epochs": record.cumulative_epochs}


def base_model_views() -> list[dict[str, Any]]:
    out = []
    for row in list_base_models():
        alias = row["kind"] == "alias"
        out.append({"id": row["name"], "created": BASE_CREATED, "object": "model", "owned_by": BASE_OWNER,
                    "kind": "alias" if alias else "base", "status": row["status"], "description": row["description"],
                    "base_model": ALIASES[row["name"]][1] if alias else row["name"]})
    return out


def model_views(store: Store) -> list[dict[str, Any]]:
    return base_model_views() + [model_view(r) for r in store.list_models()]


def find_model_view(store: Store, model_id: str) -> dict[str, Any]:
    record = store.find_model(model_id)
    if record is not None:
        return model_view(record)
    views = base_model_views()
    for view in views:
        if view["id"] == model_id.lower():
            return view
    target = alias_target(model_id)
    if target is not None:  # a dated snapshot (gpt-4o-mini-2024-07-18) is its family's alias
        return {**next(v for v in views if v["kind"] == "alias"), "id": model_id.lower(),
                "description": f"alias of {target[1]}", "base_model": target[1]}
    raise NotFoundError(f"No such model: {model_id}.", hint="List models with `tunelab models list`.")
