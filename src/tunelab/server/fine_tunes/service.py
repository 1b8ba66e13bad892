"""Legacy fine-tunes: the same jobs as /v1/fine_tuning/jobs, shown the old way (ids `ft-…`,
status `pending`, files inlined, events oldest first and streamable). The objects are the jobs
layer's legacy views, which `tunelab api fine_tunes.get/list` print too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from tunelab.errors import TunelabError
from tunelab.jobs import views
from tunelab.jobs.follow import afollow
from tunelab.server.common import ServerState
from tunelab.server.errors import from_tunelab_error
from tunelab.server.models import service as models
from tunelab.server.fine_tunes.protocol import FineTune, FineTuneCreateRequest, FineTuneEvent
from tunelab.server.fine_tuning import service as jobs
from tunelab.server.fine_tuning.protocol import HyperparametersIn, JobCreateRequest
from tunelab.store import EventRecord, JobRecord, Store
from tunelab.training.plan import JobPlan


def create(store: Store, request: FineTuneCreateRequest) -> FineTune:
    hyper = {k: v for k, v in dict(n_epochs=request.n_epochs, batch_size=request.batch_size,
                                   learning_rate_multiplier=request.learning_rate_multiplier,
                                   prompt_loss_weight=request.prompt_loss_weight).items() if v is not None}
    # The modern endpoint's checks (file ids, 400s naming the param) apply to the legacy one too.
    modern = JobCreateRequest(
        model=request.model or "curie", training_file=request.training_file, validation_file=request.validation_file,
        hyperparameters=HyperparametersIn(**hyper), suffix=request.suffix,
        compute_classification_metrics=bool(request.compute_classification_metrics),
        classification_n_classes=request.classification_n_classes,
        classification_positive_class=request.classification_positive_class,
        classification_betas=request.classification_betas)
    created = jobs.create_job(store, modern, legacy=True)
    return to_object(store, jobs.get_job(store, created.id), with_events=True)


def delete(state: ServerState, target: str) -> dict:
    """A fine-tuned model (deleted like DELETE /v1/models/{model}), else a finished job."""
    store = state.store
    if store.find_model(target) is not None:
        return models.delete_model(state, target).model_dump()
    job = jobs.get_job(store, target)
    try:
        store.delete_job(job.id)
    except TunelabError as exc:  # ConflictError: not finished -> 409
        raise from_tunelab_error(exc, param="fine_tune_id") from None
    return {"object": "fine-tune", "id": job.legacy_id, "deleted": True}


def event_object(event: EventRecord, n_epochs: int | None = None) -> FineTuneEvent:
    """The legacy event, in the legacy texts ("Fine-tune started", "Completed epoch 1/4", ...)."""
    return FineTuneEvent.model_validate(views.legacy_event_view(event, n_epochs))


def n_epochs(job: JobRecord) -> int:
    return JobPlan.from_job(job).n_epochs


def to_object(store: Store, job: JobRecord, *, with_events: bool = False) -> FineTune:
    return FineTune.model_validate(views.legacy_job_view(store, job, with_events=with_events))


def list_all(store: Store) -> list[FineTune]:
    return [to_object(store, j) for j in reversed(store.list_jobs())]  # oldest first, as the legacy API did


async def stream_events(store: Store, job_id: str) -> AsyncIterator[str]:
    """Server-sent events: every event so far, then new ones as they happen; `[DONE]` once the job
    has finished and its last event was sent."""
    epochs = n_epochs(store.get_job(job_id))
    async for event in afollow(store, job_id):
        yield f"data: {json.dumps(event_object(event, epochs).model_dump())}\n\n"
    yield "data: [DONE]\n\n"
