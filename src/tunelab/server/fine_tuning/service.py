"""Fine-tuning jobs over HTTP. Creation goes through the same planning as `tunelab api
fine_tunes.create` (everything validated at once, then queued), and the background worker that
runs CLI jobs runs these too: a job is one row in the store whoever created it."""

from __future__ import annotations

from typing import Any

from tunelab.errors import InvalidInputError, NotFoundError, TunelabError
from tunelab.server.errors import APIError, bad_request, from_tunelab_error, not_found
from tunelab.server.fine_tuning.protocol import (
    CheckpointMetrics, FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent, JobCreateRequest, JobError,
    JobHyperparameters, JobMethod, SupervisedOut,
)
from tunelab.store import EventRecord, JobRecord, Store
from tunelab.store.ids import is_valid_id, normalize_job_id
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job as plan_job

OPENAI_HYPERPARAMETERS = ("batch_size", "learning_rate_multiplier", "n_epochs")


def check_training_file(store: Store, file_id: str | None, param: str) -> None:
    """Over HTTP a data file is always an uploaded file id, never a path on the server."""
    if file_id is None:
        return
    if not is_valid_id(file_id, "file"):
        raise bad_request(f"Invalid {param} {file_id!r}: give the id of a file uploaded with POST /v1/files "
                          "(it looks like file-…).", param=param, code="invalid_file_id")
    try:
        record = store.get_file(file_id)
    except NotFoundError:
        raise bad_request(f"Invalid {param}: no such file {file_id}.", param=param, code="file_not_found") from None
    if record.purpose != "fine-tune":
        raise bad_request(f"Invalid {param}: {file_id} has purpose {record.purpose!r}; upload training data with "
                          "purpose 'fine-tune'.", param=param)


def _hyperparameters(request: JobCreateRequest) -> dict[str, Any]:
    values: dict[str, Any] = {}
    sources = [request.hyperparameters]
    method = request.method
    if method is not None and not isinstance(method, str):
        if method.type != "supervised":
            raise bad_request(f"Fine-tuning method {method.type!r} is not supported; tunelab trains supervised "
                              "(use method {\"type\": \"supervised\"}).", param="method.type")
        if method.supervised is not None:
            sources.append(method.supervised.hyperparameters)
    for source in sources:
        if source is None:
            continue
        for key, value in source.model_dump(exclude_unset=True).items():
            if value == "auto":
                if key not in OPENAI_HYPERPARAMETERS:
                    raise bad_request(f"'auto' is only accepted for {', '.join(OPENAI_HYPERPARAMETERS)}.",
                                      param=f"hyperparameters.{key}")
                values.pop(key, None)  # the model's default
                continue
            if key in values and values[key] != value:
                raise bad_request(f"hyperparameters.{key} is given twice with different values "
                                  "(in hyperparameters and in method.supervised.hyperparameters).",
                                  param=f"hyperparameters.{key}")
            values[key] = value
    if isinstance(method, str):
        values["method"] = method
    if request.seed is not None:
        values["seed"] = request.seed
    return values


def _param_of(problems: list[str]) -> str | None:
    for prefix, param in (("training file", "training_file"), ("validation file", "validation_file"),
                          ("suffix", "suffix")):
        if problems and all(p.lstrip().startswith(prefix) or p.startswith("    ") for p in problems):
            return param
    return None


def create_job(store: Store, request: JobCreateRequest) -> FineTuningJob:
    from tunelab.training.worker import ensure_worker

    check_training_file(store, request.training_file, "training_file")
    check_training_file(store, request.validation_file, "validation_file")
    if request.integrations:
        raise bad_request("Integrations (e.g. wandb) are not supported by tunelab; the results file of the job "
                          "(GET /v1/files/{result_file}/content) holds every metric.", param="integrations")
    options = ClassificationOptions(
        compute_classification_metrics=request.compute_classification_metrics,
        classification_n_classes=request.classification_n_classes,
        classification_positive_class=request.classification_positive_class,
        classification_betas=list(request.classification_betas or []))
    job_request = JobRequest(training_file=request.training_file, model=request.model,
                             validation_file=request.validation_file, hyperparameters=_hyperparameters(request),
                             classification=options, suffix=request.suffix)
    try:
        job, notices = plan_job(store, job_request)
    except InvalidInputError as exc:
        raise APIError(400, exc.render(), param=_param_of(exc.problems)) from None
    if request.metadata:
        job = store.update_job(job.id, options={**job.options, "metadata": dict(request.metadata)})
    ensure_worker(store)
    return to_object(store, job, notices)


def get_job(store: Store, job_id: str) -> JobRecord:
    try:
        return store.get_job(job_id)
    except NotFoundError:
        raise not_found(f"No such fine-tuning job: {job_id}.", param="fine_tuning_job_id",
                        code="fine_tuning_job_not_found") from None


def cancel_job(store: Store, job_id: str) -> FineTuningJob:
    job = get_job(store, job_id)
    try:
        job = store.request_cancel(job.id)
    except TunelabError as exc:  # ConflictError: already finished -> 409
        raise from_tunelab_error(exc, param="fine_tuning_job_id") from None
    return to_object(store, job)


def list_jobs(store: Store, *, after: str | None, limit: int) -> tuple[list[FineTuningJob], bool]:
    if after is not None:
        get_job(store, after)
    jobs = store.list_jobs(after=normalize_job_id(after) if after else None, limit=limit + 1)
    return [to_object(store, j) for j in jobs[:limit]], len(jobs) > limit


def list_events(store: Store, job_id: str, *, after: str | None, limit: int) -> tuple[list[FineTuningJobEvent], bool]:
    """Newest first, as OpenAI pages them; `after` is the id of the last event of the previous page."""
    job = get_job(store, job_id)
    events = store.list_events(job.id, newest_first=True)
    if after:
        ids = [e.id for e in events]
        if after not in ids:
            raise bad_request(f"No event {after} in job {job.id} (the `after` cursor).", param="after")
        events = events[ids.index(after) + 1:]
    return [event_object(e) for e in events[:limit]], len(events) > limit


def list_checkpoints(store: Store, job_id: str, *, after: str | None, limit: int) -> tuple[list[FineTuningJobCheckpoint], bool]:
    job = get_job(store, job_id)
    checkpoints = sorted(store.list_checkpoints(job.id), key=lambda c: c.step, reverse=True)
    if after:
        ids = [c.id for c in checkpoints]
        if after not in ids:
            raise bad_request(f"No checkpoint {after} in job {job.id} (the `after` cursor).", param="after")
        checkpoints = checkpoints[ids.index(after) + 1:]
    out = []
    for c in checkpoints[:limit]:
        m = c.metrics or {}
        out.append(FineTuningJobCheckpoint(
            id=c.id, created_at=c.created_at,
            fine_tuned_model_checkpoint=f"{job.fine_tuned_model or job.id}:ckpt-step-{c.step}",
            fine_tuning_job_id=job.id, step_number=c.step, epoch=c.epoch, all_metrics=m,
            metrics=CheckpointMetrics(step=c.step, train_loss=m.get("training_loss"),
                                      train_mean_token_accuracy=m.get("training_token_accuracy"),
                                      valid_loss=m.get("validation_loss"),
                                      valid_mean_token_accuracy=m.get("validation_token_accuracy"))))
    return out, len(checkpoints) > limit


def event_object(event: EventRecord) -> FineTuningJobEvent:
    data = event.data or None
    is_metrics = bool(data) and "step" in data and "loss" in data
    level = {"warning": "warn"}.get(event.level, event.level)
    if level not in ("info", "warn", "error"):
        level = "info"
    return FineTuningJobEvent(id=event.id, created_at=event.created_at, level=level, message=event.message,
                              data=data, type="metrics" if is_metrics else "message")


def resolved_hyperparameters(job: JobRecord) -> JobHyperparameters:
    hp = job.hyperparams
    return JobHyperparameters(batch_size=hp.get("batch_size") or job.options.get("default_batch_size") or "auto",
                              learning_rate_multiplier=hp.get("learning_rate_multiplier"),
                              n_epochs=hp.get("n_epochs"))


def to_object(store: Store, job: JobRecord, notices: list[str] | None = None) -> FineTuningJob:
    hyper = resolved_hyperparameters(job)
    opts = job.options or {}
    error = None
    if job.error:
        error = JobError(code=str(job.error.get("code") or "error"), message=str(job.error.get("message") or ""),
                         param=job.error.get("param"))
    return FineTuningJob(
        id=job.id, created_at=job.created_at, error=error, fine_tuned_model=job.fine_tuned_model,
        finished_at=job.finished_at, hyperparameters=hyper, model=job.model, organization_id=job.organization_id,
        result_files=[job.result_file] if job.result_file else [], seed=job.seed, status=job.status,
        trained_tokens=job.trained_tokens, training_file=job.training_file, validation_file=job.validation_file,
        metadata=opts.get("metadata"), method=JobMethod(supervised=SupervisedOut(hyperparameters=hyper)),
        legacy_id=job.legacy_id, base_model=job.base_model, training_method=job.method,
        hyperparameters_full=dict(job.hyperparams),
        classification={k: opts.get(k) for k in ("compute_classification_metrics", "classification_n_classes",
                                                 "classification_positive_class", "classification_betas",
                                                 "classification", "labels")},
        started_at=job.started_at, updated_at=job.updated_at, trained_examples=job.trained_examples,
        train_seconds=job.train_seconds, final_metrics=opts.get("final_metrics"), notices=list(notices or []))
