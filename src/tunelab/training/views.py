"""JSON views of jobs and files in the legacy `fine-tune` shape that `openai api fine_tunes.get`
printed (and the /v1/fine-tunes endpoints return)."""

from __future__ import annotations

from tunelab.errors import NotFoundError
from tunelab.store import FileRecord, JobRecord, Store

LEGACY_HYPERPARAMS = ("n_epochs", "batch_size", "prompt_loss_weight", "learning_rate_multiplier")
CLASSIFICATION_KEYS = ("compute_classification_metrics", "classification_n_classes",
                       "classification_positive_class", "classification_betas")


def file_view(record: FileRecord) -> dict:
    return {"object": "file", "id": record.id, "purpose": record.purpose, "filename": record.filename,
            "bytes": record.bytes, "created_at": record.created_at, "status": "processed",
            "status_details": None}


def _file_or_stub(store: Store, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    try:
        return [file_view(store.get_file(file_id))]
    except NotFoundError:
        return [{"object": "file", "id": file_id, "status": "deleted"}]


def hyperparams_view(job: JobRecord) -> dict:
    hp = {k: job.hyperparams.get(k) for k in LEGACY_HYPERPARAMS}
    if hp["batch_size"] is None:
        hp["batch_size"] = job.options.get("default_batch_size")
    for key in CLASSIFICATION_KEYS:
        value = job.options.get(key)
        if value not in (None, False, []):
            hp[key] = value
    # tunelab extensions
    hp["method"] = job.method
    hp["seed"] = job.seed
    if job.hyperparams.get("lora"):
        hp["lora"] = True
    return hp


def legacy_job_view(store: Store, job: JobRecord, *, with_events: bool = True) -> dict:
    view = {
        "object": "fine-tune",
        "id": job.legacy_id,
        "hyperparams": hyperparams_view(job),
        "organization_id": job.organization_id,
        "model": job.model,
        "training_files": _file_or_stub(store, job.training_file),
        "validation_files": _file_or_stub(store, job.validation_file),
        "result_files": _file_or_stub(store, job.result_file),
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "status": job.status,
        "fine_tuned_model": job.fine_tuned_model,
    }
    if with_events:
        view["events"] = [{"object": "fine-tune-event", "level": e.level, "message": e.message,
                           "created_at": e.created_at} for e in store.list_events(job.id)]
    # tunelab extensions
    view["tunelab"] = {
        "job_id": job.id, "base_model": job.base_model, "parent_model": job.parent_model,
        "cumulative_epochs": job.options.get("cumulative_epochs"), "trained_tokens": job.trained_tokens,
        "train_seconds": job.train_seconds, "error": job.error,
    }
    return view
