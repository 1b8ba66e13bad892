"""POST/GET /v1/fine_tuning/jobs, GET /v1/fine_tuning/jobs/{id}, POST /v1/fine_tuning/jobs/{id}/cancel,
POST /v1/fine_tuning/jobs/{id}/pause and /resume, GET /v1/fine_tuning/jobs/{id}/events,
GET /v1/fine_tuning/jobs/{id}/checkpoints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from tunelab.server.common import ListObject, ServerState, get_state, list_of
from tunelab.server.errors import bad_request
from tunelab.server.fine_tuning import service
from tunelab.server.fine_tuning.protocol import (
    FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent, JobCreateRequest,
)

router = APIRouter(tags=["fine_tuning"])


@router.post("/fine_tuning/jobs", response_model=FineTuningJob)
def create_job(request: JobCreateRequest, state: ServerState = Depends(get_state)):
    """Validate and queue a job; the background worker starts if none is running.

    `model` is a base model (minilm-l6, smollm2-135m, ada/babbage/curie/davinci), a fine-tuned model id
    (to continue training it) or a Hugging Face model folder on the server. `training_file` and
    `validation_file` are ids of uploaded files. Classification metrics are requested with the extra
    body fields compute_classification_metrics, classification_n_classes,
    classification_positive_class and classification_betas (openai client: `extra_body=`)."""
    return service.create_job(state.store, request)


@router.get("/fine_tuning/jobs", response_model=ListObject[FineTuningJob])
def list_jobs(request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=1000),
              state: ServerState = Depends(get_state)):
    """Newest first. `metadata[key]=value` (repeatable) keeps the jobs whose metadata has every pair;
    `metadata=null` lists only jobs without metadata, as OpenAI's client sends it."""
    metadata = metadata_filter(request.query_params.multi_items())
    data, more = service.list_jobs(state.store, after=after, limit=limit, metadata=metadata)
    return list_of(data, more)


def metadata_filter(items) -> dict[str, str] | None:
    """`metadata[key]=value` query parameters as {key: value}; `metadata=null` as {} (jobs without
    metadata); None when there is no filter. Any other query parameter than these
    and after/limit is refused, so that a filter the server does not know is never ignored."""
    out: dict[str, str] = {}
    without = False
    for name, value in items:
        if name.startswith("metadata[") and name.endswith("]") and len(name) > len("metadata[]"):
            out[name[len("metadata["):-1]] = value
        elif name == "metadata" and value == "null":
            without = True
        elif name not in ("after", "limit"):
            raise bad_request(f"Unknown query parameter {name!r}; GET /v1/fine_tuning/jobs takes after, limit and "
                              "metadata[key]=value (or metadata=null).", param=name)
    if without and out:
        raise bad_request("metadata=null (jobs without metadata) cannot be combined with metadata[key]=value.",
                          param="metadata")
    return {} if without else (out or None)


@router.get("/fine_tuning/jobs/{fine_tuning_job_id}", response_model=FineTuningJob)
def retrieve_job(fine_tuning_job_id: str, state: ServerState = Depends(get_state)):
    return service.to_object(service.get_job(state.store, fine_tuning_job_id), store=state.store)


@router.post("/fine_tuning/jobs/{fine_tuning_job_id}/cancel", response_model=FineTuningJob)
def cancel_job(fine_tuning_job_id: str, state: ServerState = Depends(get_state)):
    """The job is `cancelled` at once, as OpenAI answers; a running one's training stops within about a
    second and registers no model. Finished jobs: 409."""
    return service.cancel_job(state.store, fine_tuning_job_id)


@router.post("/fine_tuning/jobs/{fine_tuning_job_id}/pause", response_model=FineTuningJob)
def pause_job(fine_tuning_job_id: str, state: ServerState = Depends(get_state)):
    """A queued job is paused at once; a running one saves a resumable checkpoint at its next step
    (within about a second) and stops. Jobs that are not queued or running: 409."""
    return service.pause_job(state.store, fine_tuning_job_id)


@router.post("/fine_tuning/jobs/{fine_tuning_job_id}/resume", response_model=FineTuningJob)
def resume_job(fine_tuning_job_id: str, state: ServerState = Depends(get_state)):
    """A paused job is queued again and continues from its checkpoint. Jobs that are not paused, or
    are still saving their checkpoint: 409."""
    return service.resume_job(state.store, fine_tuning_job_id)


@router.get("/fine_tuning/jobs/{fine_tuning_job_id}/events", response_model=ListObject[FineTuningJobEvent])
def list_events(fine_tuning_job_id: str, after: str | None = None, limit: int = Query(20, ge=1, le=10000),
                state: ServerState = Depends(get_state)):
    """Newest first; page with `after` = the last event id of the previous page."""
    data, more = service.list_events(state.store, fine_tuning_job_id, after=after, limit=limit)
    return list_of(data, more)


@router.get("/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", response_model=ListObject[FineTuningJobCheckpoint])
def list_checkpoints(fine_tuning_job_id: str, after: str | None = None, limit: int = Query(10, ge=1, le=1000),
                     state: ServerState = Depends(get_state)):
    """The epoch checkpoints of the job (the last three stay on disk), newest first."""
    data, more = service.list_checkpoints(state.store, fine_tuning_job_id, after=after, limit=limit)
    return list_of(data, more)
