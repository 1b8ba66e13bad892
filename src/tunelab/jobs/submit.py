"""Submitting a job: validate and plan (training.planning reports every problem at once), persist,
then wake the background worker. The CLI, the server and the Python API all submit through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunelab.store import JobRecord, Store
from tunelab.store.records import QUEUED, RUNNING
from tunelab.training import worker  # ensure_worker is looked up per call, so tests can replace it
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job


@dataclass
class Submission:
    job: JobRecord
    notices: list[str] = field(default_factory=list)
    """Notes from validation to show the user (e.g. how an alias was mapped)."""
    uploads: list[tuple[str, str]] = field(default_factory=list)
    """(path as given, new file id) of each data file that was uploaded into the store."""


def job_request(training_file: str, model: str, validation_file: str | None = None, *,
                hyperparameters: Mapping[str, Any] | None = None, compute_classification_metrics: bool = False,
                classification_n_classes: int | None = None, classification_positive_class: str | None = None,
                classification_betas: Sequence[float] | None = None, suffix: str | None = None,
                id_style: str = "legacy") -> JobRequest:
    """A request from OpenAI's flat create parameters. Hyperparameters left out (or None) take the
    model's defaults. `id_style` "current" gives the model an id of the current API (`ft:…`)."""
    return JobRequest(
        training_file=str(training_file), model=str(model),
        validation_file=str(validation_file) if validation_file is not None else None,
        hyperparameters={k: v for k, v in (hyperparameters or {}).items() if v is not None},
        classification=ClassificationOptions(
            compute_classification_metrics=bool(compute_classification_metrics),
            classification_n_classes=classification_n_classes,
            classification_positive_class=classification_positive_class,
            classification_betas=list(classification_betas or [])),
        suffix=suffix, id_style=id_style)


def submit(store: Store, request: JobRequest, *, metadata: Mapping[str, str] | None = None,
           start_worker: bool = True, results_format: str = "legacy") -> Submission:
    """Queue the job (InvalidInputError listing every problem if it cannot run) and make sure a
    worker will run it. `start_worker=False` leaves the job queued for a worker started later.
    `results_format`: "current" gives the job's result file the columns of /v1/fine_tuning/jobs
    (train_loss, valid_mean_token_accuracy, ...), "legacy" those of the legacy API and CLI."""
    job, notices = create_job(store, request)
    extra = {"metadata": dict(metadata)} if metadata else {}
    if results_format != "legacy":
        extra["results_format"] = results_format
    if extra:
        job = store.update_job(job.id, options={**job.options, **extra})
    uploads = [(ref, file_id) for ref, file_id in ((request.training_file, job.training_file),
                                                   (request.validation_file, job.validation_file))
               if ref and file_id and ref != file_id]
    if start_worker:
        worker.ensure_worker(store)
    return Submission(job=job, notices=list(notices), uploads=uploads)


def serve_the_queue(store: Store) -> int | None:
    """Start a background worker if a job waits for one (queued, or running under a worker that is
    gone) and none runs; the new pid, if any. `tunelab serve` calls it at start and then every
    WORKER_CHECK_SECONDS: a worker killed while only the server runs (kill -9, the OOM killer) would
    otherwise leave its job `running` for good and the jobs behind it queued, since nothing else
    would start the next worker that resumes them."""
    if not (store.list_jobs(status=QUEUED, limit=1) or store.list_jobs(status=RUNNING, limit=1)):
        return None
    return worker.ensure_worker(store)


def resume(store: Store, job_id: str) -> JobRecord:
    """The job, with a worker started if it has not ended: re-attaching after a reboot restarts
    its work (from the last checkpoint)."""
    job = store.get_job(job_id)
    if not job.is_terminal:
        worker.ensure_worker(store)
    return job


def resume_paused(store: Store, job_id: str) -> JobRecord:
    """Queue a paused job again (ConflictError if it is not paused) and make sure a worker runs it:
    it continues from the checkpoint it saved when it paused."""
    job = store.request_resume(job_id)
    worker.ensure_worker(store)
    return job
