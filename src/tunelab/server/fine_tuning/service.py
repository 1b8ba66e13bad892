"""Fine-tuning jobs over HTTP: what is particular to HTTP (data files are uploaded file ids,
OpenAI's hyperparameter and method objects, errors as 4xx envelopes). Submitting, listing and
showing jobs is the jobs layer's, the same as for `tunelab api fine_tunes.*`: a job is one row in
the store whoever created it."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from tunelab.errors import InvalidInputError, NotFoundError, TunelabError
from tunelab.jobs import submit, views
from tunelab.server.common import page
from tunelab.server.errors import APIError, bad_request, from_tunelab_error, not_found
from tunelab.server.fine_tuning.protocol import (
    FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent, JobCreateRequest,
)
from tunelab.server.prediction_log import check_tags
from tunelab.store import JobRecord, Store
from tunelab.store.ids import is_valid_id, normalize_job_id
from tunelab.training.config import Hyperparameters

OPENAI_HYPERPARAMETERS = ("batch_size", "learning_rate_multiplier", "n_epochs")
HYPERPARAMETER_NAMES = frozenset(f.name for f in fields(Hyperparameters))


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
        # The settings of another method (a dpo beta, a grader) sent with type supervised would
        # otherwise be dropped without a word: the caller meant them to apply.
        other = next((name for name in ("dpo", "reinforcement") if getattr(method, name) is not None), None)
        if other is not None:
            raise bad_request(f"method.{other} is given with method.type 'supervised'; tunelab trains supervised "
                              f"only, so the {other} settings cannot apply: leave method.{other} out (the "
                              "supervised settings go in method.supervised).", param=f"method.{other}")
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


ERROR_CODES = {"training_file": "invalid_training_file", "validation_file": "invalid_validation_file",
               "suffix": "invalid_suffix"}
"""error.code of a refused job, by the parameter at fault: OpenAI's codes."""


def _param_of(problems: list[str], model: str | None = None) -> str | None:
    for prefix, param in (("training file", "training_file"), ("validation file", "validation_file"),
                          ("suffix", "suffix"), ("unknown hyperparameter", "hyperparameters"),
                          ("Unknown model", "model")):
        if problems and all(p.lstrip().removeprefix("the ").startswith(prefix) or p.startswith("    ")
                            for p in problems):
            return param
    # "<model> is an encoder; …", "<model> was trained with method …": what the model can learn
    if model and problems and all(p.startswith(f"{model} ") or p.startswith("    ") for p in problems):
        return "model"
    # "n_epochs must be between 1 and 100, got 0": a problem with one hyperparameter names it
    names = {p.split(" ", 1)[0] for p in problems}
    if len(names) == 1 and names <= HYPERPARAMETER_NAMES:
        return f"hyperparameters.{names.pop()}"
    return None


def create_job(store: Store, request: JobCreateRequest, *, legacy: bool = False) -> FineTuningJob:
    """`legacy`: created on /v1/fine-tunes, whose result file keeps the legacy columns and whose model
    gets a legacy id (`ada:ft-personal-…`; the current endpoint's are `ft:<base>:<org>:<suffix>:<id>`)."""
    if request.integrations:
        raise bad_request("Integrations (e.g. wandb) are not supported by tunelab; the results file of the job "
                          "(GET /v1/files/{result_file}/content) holds every metric.", param="integrations")
    check_tags(None, request.metadata)  # OpenAI's limits: 16 pairs, keys of 64 and values of 512 characters
    check_training_file(store, request.training_file, "training_file")
    check_training_file(store, request.validation_file, "validation_file")
    job_request = submit.job_request(
        request.training_file, request.model, request.validation_file, hyperparameters=_hyperparameters(request),
        compute_classification_metrics=request.compute_classification_metrics,
        classification_n_classes=request.classification_n_classes,
        classification_positive_class=request.classification_positive_class,
        classification_betas=request.classification_betas, suffix=request.suffix,
        id_style="legacy" if legacy else "current")
    try:
        submission = submit.submit(store, job_request, metadata=request.metadata,
                                   results_format="legacy" if legacy else "current")
    except InvalidInputError as exc:
        param = _param_of(exc.problems, request.model)
        raise APIError(400, exc.render(), param=param, code=ERROR_CODES.get(param)) from None
    return to_object(submission.job, submission.notices)


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
    return to_object(job)


def pause_job(store: Store, job_id: str) -> FineTuningJob:
    job = get_job(store, job_id)
    try:
        return to_object(store.request_pause(job.id))
    except TunelabError as exc:  # ConflictError: not queued or running -> 409
        raise from_tunelab_error(exc, param="fine_tuning_job_id") from None


def resume_job(store: Store, job_id: str) -> FineTuningJob:
    job = get_job(store, job_id)
    try:
        return to_object(submit.resume_paused(store, job.id))
    except TunelabError as exc:  # ConflictError: not paused, or still saving its checkpoint -> 409
        raise from_tunelab_error(exc, param="fine_tuning_job_id") from None


def list_jobs(store: Store, *, after: str | None, limit: int,
              metadata: dict[str, str] | None = None) -> tuple[list[FineTuningJob], bool]:
    """Newest first. `metadata`: only jobs whose metadata holds every one of these pairs (OpenAI's
    `metadata[key]=value` query; {} keeps the jobs without metadata); such a list is filtered in Python, since metadata is JSON in a column."""
    if after is not None:  # a stale cursor is a bad `after`, as for files and events (it was a 404 on an id not sent)
        try:
            store.get_job(after)
        except NotFoundError:
            raise bad_request(f"No fine-tuning job {after} (the `after` cursor): page with the last id of the "
                              "previous page.", param="after") from None
    cursor = normalize_job_id(after) if after else None
    if metadata is None:
        # The store pages jobs in SQL; one row beyond the limit says whether there are more.
        jobs, more = page(store.list_jobs(after=cursor, limit=limit + 1), limit=limit)
        return [to_object(j, store=store) for j in jobs], more
    matching = [j for j in store.list_jobs(after=cursor)
                if (bool(metadata) or not (j.options or {}).get("metadata")) and all(((j.options or {}).get("metadata") or {}).get(k) == v for k, v in metadata.items())]
    return [to_object(j, store=store) for j in matching[:limit]], len(matching) > limit


def list_events(store: Store, job_id: str, *, after: str | None, limit: int) -> tuple[list[FineTuningJobEvent], bool]:
    """Newest first, as OpenAI pages them; `after` is the id of the last event of the previous page."""
    job = get_job(store, job_id)
    events, more = page(store.list_events(job.id, newest_first=True), after=after, limit=limit,
                        unknown=f"No event {{after}} in job {job.id}")
    return [FineTuningJobEvent.model_validate(views.event_view(e)) for e in events], more


def list_checkpoints(store: Store, job_id: str, *, after: str | None, limit: int) -> tuple[list[FineTuningJobCheckpoint], bool]:
    job = get_job(store, job_id)
    checkpoints, more = page(sorted(store.list_checkpoints(job.id), key=lambda c: c.step, reverse=True),
                             after=after, limit=limit, unknown=f"No checkpoint {{after}} in job {job.id}")
    return [FineTuningJobCheckpoint.model_validate(views.checkpoint_view(job, c)) for c in checkpoints], more


def estimated_finish(store: Store, job: JobRecord) -> int | None:
    """OpenAI's `estimated_finish` of a running job: the pace of its newest step event (seconds of
    training per step, resumed attempts included) over the steps left; None before the first step
    and for a job that is not running."""
    if job.status != "running":
        return None
    for event in store.list_events(job.id, newest_first=True, limit=50):
        data = event.data or {}
        step, total, elapsed = data.get("step"), data.get("total_steps"), data.get("elapsed")
        if step and total and elapsed is not None:
            return int(event.created_at + elapsed / step * max(total - step, 0))
    return None


def to_object(job: JobRecord, notices: list[str] | None = None, *, store: Store | None = None) -> FineTuningJob:
    """`store`: to estimate a running job's finish (without it, `estimated_finish` is null)."""
    obj = FineTuningJob.model_validate(views.job_view(job, notices))
    if store is not None:
        obj.estimated_finish = estimated_finish(store, job)
    return obj
