"""Legacy fine-tunes: the same jobs as /v1/fine_tuning/jobs, shown the old way (ids `ft-…`,
status `pending`, files inlined, events oldest first and streamable). The objects are the jobs
layer's legacy views, which `tunelab api fine_tunes.get/list` print too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from tunelab.jobs import views
from tunelab.jobs.follow import afollow
from tunelab.server.fine_tunes.protocol import FineTune, FineTuneCreateRequest, FineTuneEvent
from tunelab.server.fine_tuning import service as jobs
from tunelab.server.fine_tuning.protocol import HyperparametersIn, JobCreateRequest
from tunelab.store import EventRecord, JobRecord, Store


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
    created = jobs.create_job(store, modern)
    return to_object(store, jobs.get_job(store, created.id), with_events=True)


def event_object(event: EventRecord) -> FineTuneEvent:
    return FineTuneEvent.model_validate(views.legacy_event_view(event))


def to_object(store: Store, job: JobRecord, *, with_events: bool = False) -> FineTune:
    return FineTune.model_validate(views.legacy_job_view(store, job, with_events=with_events))


def list_all(store: Store) -> list[FineTune]:
    return [to_object(store, j) for j in reversed(store.list_jobs())]  # oldest first, as the legacy API did


async def stream_events(store: Store, job_id: str) -> AsyncIterator[str]:
    """Server-sent events: every event so far, then new ones as they happen; `[DONE]` once the job
    has finished and its last event was sent."""
    async for event in afollow(store, job_id):
        yield f"data: {json.dumps(event_object(event).model_dump())}\n\n"
    yield "data: [DONE]\n\n"
