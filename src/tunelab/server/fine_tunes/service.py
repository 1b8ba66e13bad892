"""Legacy fine-tunes: the same jobs as /v1/fine_tuning/jobs, shown the old way (ids `ft-…`,
status `pending`, files inlined, events oldest first and streamable)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from tunelab.errors import NotFoundError
from tunelab.server.fine_tunes.protocol import FineTune, FineTuneCreateRequest, FineTuneEvent, FineTuneHyperparams
from tunelab.server.fine_tuning import service as jobs
from tunelab.server.fine_tuning.protocol import HyperparametersIn, JobCreateRequest
from tunelab.server.files.service import to_object as file_object
from tunelab.store import EventRecord, JobRecord, Store

LEGACY_STATUS = {"validating_files": "pending", "queued": "pending"}


def create(store: Store, request: FineTuneCreateRequest) -> FineTune:
    hyper = {k: v for k, v in dict(n_epochs=request.n_epochs, batch_size=request.batch_size,
                                   learning_rate_multiplier=request.learning_rate_multiplier,
                                   prompt_loss_weight=request.prompt_loss_weight).items() if v is not None}
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
    return FineTuneEvent(created_at=event.created_at, level=event.level, message=event.message)


def _files(store: Store, *ids: str | None):
    out = []
    for file_id in ids:
        if file_id:
            try:
                out.append(file_object(store.get_file(file_id)))
            except NotFoundError:
                pass  # deleted since
    return out


def to_object(store: Store, job: JobRecord, *, with_events: bool = False) -> FineTune:
    """The legacy job object; `tunelab api fine_tunes.get/list` print this too."""
    hp = job.hyperparams
    opts = job.options
    classification = {k: opts.get(k) for k in ("compute_classification_metrics", "classification_n_classes",
                                                "classification_positive_class", "classification_betas")
                      if opts.get(k) not in (None, False, [])}
    return FineTune(
        id=job.legacy_id, model=job.model, created_at=job.created_at,
        events=[event_object(e) for e in store.list_events(job.id)] if with_events else None,
        fine_tuned_model=job.fine_tuned_model,
        hyperparams=FineTuneHyperparams(batch_size=hp.get("batch_size") or opts.get("default_batch_size"),
                                        learning_rate_multiplier=hp.get("learning_rate_multiplier"),
                                        n_epochs=hp.get("n_epochs"), prompt_loss_weight=hp.get("prompt_loss_weight"),
                                        method=job.method, seed=job.seed, lora=hp.get("lora") or None,
                                        **classification),
        organization_id=job.organization_id, result_files=_files(store, job.result_file),
        status=LEGACY_STATUS.get(job.status, job.status), validation_files=_files(store, job.validation_file),
        training_files=_files(store, job.training_file), updated_at=job.updated_at,
        job_id=job.id, base_model=job.base_model, parent_model=job.parent_model,
        cumulative_epochs=opts.get("cumulative_epochs"), trained_tokens=job.trained_tokens,
        train_seconds=job.train_seconds, error=job.error)


def list_all(store: Store) -> list[FineTune]:
    return [to_object(store, j) for j in reversed(store.list_jobs())]  # oldest first, as the legacy API did


async def stream_events(store: Store, job_id: str, poll_s: float = 0.5) -> AsyncIterator[str]:
    """Server-sent events: every event so far, then new ones as they happen; `[DONE]` once the job
    has finished and its last event was sent."""
    seq = 0
    while True:
        events = await run_in_threadpool(store.list_events, job_id, after_seq=seq)
        for event in events:
            seq = event.seq
            yield f"data: {json.dumps(event_object(event).model_dump())}\n\n"
        job = await run_in_threadpool(store.get_job, job_id)
        if job.is_terminal:
            tail = await run_in_threadpool(store.list_events, job_id, after_seq=seq)
            for event in tail:
                yield f"data: {json.dumps(event_object(event).model_dump())}\n\n"
            yield "data: [DONE]\n\n"
            return
        await asyncio.sleep(poll_s)
