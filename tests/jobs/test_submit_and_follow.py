"""Submitting (validate, plan, persist, wake the worker) and following a job's events to its end,
without training: the worker is replaced and the test writes the events a worker would."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.jobs.follow import EventCursor, afollow, follow
from tunelab.jobs.progress import watch
from tunelab.jobs.submit import job_request, resume, submit
from tunelab.store.records import RUNNING, SUCCEEDED


def test_submit_queues_uploads_and_wakes_the_worker(store, tiny_models, no_worker):
    submission = submit(store, job_request(tiny_models.train, "ada", tiny_models.valid,
                                           hyperparameters={"n_epochs": 2, "batch_size": None},
                                           compute_classification_metrics=True, classification_n_classes=5),
                        metadata={"chapter": "4.6"})
    job = submission.job
    assert job.status == "queued" and no_worker == [store]
    assert job.options["metadata"] == {"chapter": "4.6"} and job.hyperparams["n_epochs"] == 2
    assert [ref for ref, _ in submission.uploads] == [str(tiny_models.train), str(tiny_models.valid)]
    assert {file_id for _, file_id in submission.uploads} == {job.training_file, job.validation_file}
    assert any("alias" in n for n in submission.notices)  # ada -> minilm-l6


def test_submit_by_file_id_uploads_nothing(store, tiny_models, no_worker):
    file_id = store.add_file(tiny_models.train).id
    submission = submit(store, job_request(file_id, str(tiny_models.encoder)), start_worker=False)
    assert submission.uploads == [] and submission.job.training_file == file_id and no_worker == []


def test_every_problem_at_once_and_nothing_queued(store, tiny_models, no_worker):
    with pytest.raises(InvalidInputError) as excinfo:
        submit(store, job_request(tiny_models.train, "no-such-model", hyperparameters={"n_epochs": 0},
                                  compute_classification_metrics=True))
    text = excinfo.value.render()
    assert "no-such-model" in text and "n_epochs" in text and "validation file" in text
    assert store.list_jobs() == [] and no_worker == []


def test_resume_wakes_a_worker_only_for_unfinished_jobs(store, queued, no_worker):
    no_worker.clear()
    assert resume(store, queued.legacy_id).id == queued.id and len(no_worker) == 1
    store.request_cancel(queued.id)
    resume(store, queued.id)
    assert len(no_worker) == 1
    with pytest.raises(NotFoundError):
        resume(store, "ft-doesnotexist0000")


def finish_later(store, job_id, delay=0.3):
    """What a worker does: a few events, the job's end, and its last event just before."""
    def run():
        time.sleep(delay)
        store.update_job(job_id, status=RUNNING)
        store.add_event(job_id, "Fine-tuning job started.")
        for step in (1, 2):
            store.add_event(job_id, f"Step {step}/2", data={"step": step, "total_steps": 2, "loss": 1.0 / step,
                                                            "validation_loss": 0.5 if step == 2 else None})
        store.add_event(job_id, "Job succeeded.")
        store.update_job(job_id, status=SUCCEEDED, fine_tuned_model="enc:ft-personal-2026-01-01-00-00-00")
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_follow_yields_every_event_until_the_job_ends(store, queued):
    thread = finish_later(store, queued.id)
    messages = [e.message for e in follow(store, queued.legacy_id, poll_s=0.05)]
    thread.join()
    assert messages[0].startswith("Created fine-tuning job") and messages[-1] == "Job succeeded."
    assert messages == [e.message for e in store.list_events(queued.id)]


def test_follow_starts_a_worker_again_when_the_one_running_the_job_died(store, queued, no_worker):
    """QA on PostgreSQL: the only worker was killed (kill -9) mid-job; `fine_tunes.follow` started
    nothing, since the dead worker's lease had not yet run out, and then waited forever. Following
    now checks every so often that a worker serves a queued or running job."""
    no_worker.clear()
    store.update_job(queued.id, status=RUNNING)  # its worker is gone: nothing writes events any more
    thread = finish_later(store, queued.id, delay=0.5)
    messages = [e.message for e in follow(store, queued.id, poll_s=0.05, check_worker_s=0.1)]
    thread.join()
    assert messages[-1] == "Job succeeded." and 2 <= len(no_worker) and set(no_worker) == {store}


def test_follow_starts_no_worker_for_a_paused_job(store, queued, no_worker):
    no_worker.clear()
    store.update_job(queued.id, status="paused")
    ended = threading.Timer(0.5, lambda: store.request_cancel(queued.id))
    ended.start()
    list(follow(store, queued.id, poll_s=0.05, check_worker_s=0.1))
    ended.join()
    assert no_worker == []


def test_events_written_as_the_job_ends_are_not_lost(store, queued):
    cursor = EventCursor(store, queued.id)
    assert cursor.poll() and not cursor.done
    store.add_event(queued.id, "last words")
    store.request_cancel(queued.id)  # adds "Job cancelled before it started."
    assert [e.message for e in cursor.poll()] == ["last words", "Job cancelled before it started."]
    assert cursor.done and cursor.poll() == []


def test_afollow_streams_without_holding_the_event_loop(store, queued):
    thread = finish_later(store, queued.id)

    async def collect():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        events = [e async for e in afollow(store, queued.id, poll_s=0.05)]
        ticker.cancel()
        return events, ticks

    events, ticks = asyncio.run(collect())
    thread.join()
    assert events[-1].message == "Job succeeded." and ticks > 5


def test_watch_draws_steps_as_a_bar_and_writes_the_rest(store, queued, capsys):
    thread = finish_later(store, queued.id)
    lines = []
    job = watch(store, queued.id, write=lines.append, poll_s=0.05, bar=True)  # as on a terminal
    thread.join()
    assert job.status == "succeeded" and job.fine_tuned_model
    assert lines[0].endswith(f"Created fine-tuning job: {queued.id}")
    written = capsys.readouterr().out  # once the bar exists, lines go through it (tqdm.write)
    assert "Step 1/2" not in "\n".join(lines) + written  # a training-only step lives in the bar
    assert "Step 2/2" in written and "Job succeeded." in written


def test_watch_quietly_shows_only_warnings(store, queued):
    store.add_event(queued.id, "careful", level="warning")
    store.request_cancel(queued.id)
    lines = []
    assert watch(store, queued.id, verbose=False, write=lines.append).status == "cancelled"
    assert [line.split("] ", 1)[1] for line in lines] == ["careful"]


def test_watch_says_what_a_queued_job_waits_for(store, queued, tiny_models):
    """QA: a job created while another trained printed "Fine-tune enqueued" and then nothing for
    minutes; the watcher now says first which jobs are ahead of it."""
    later = submit(store, job_request(tiny_models.train, str(tiny_models.encoder), tiny_models.valid,
                                      hyperparameters={"n_epochs": 2}, compute_classification_metrics=True,
                                      classification_n_classes=5)).job
    store.update_job(queued.id, status=RUNNING)
    ends = threading.Timer(0.3, lambda: store.request_cancel(later.id))
    ends.start()
    lines = []
    watch(store, later.id, verbose=False, write=lines.append, poll_s=0.05)
    ends.join()
    (notice,) = [line for line in lines if line.startswith("Waiting in the queue: 1 job(s) ahead of this one")]
    assert f"{queued.legacy_id} running" in notice
    lines = []
    store.update_job(later.id, status="queued")
    ends = threading.Timer(0.3, lambda: store.request_cancel(later.id))
    ends.start()
    watch(store, later.id, write=lines.append, poll_s=0.05, bar=False)
    ends.join()
    messages = [line.split("] ", 1)[-1] for line in lines]
    enqueued = next(i for i, m in enumerate(messages) if m.startswith("Job enqueued"))
    assert messages[enqueued + 1].startswith("Waiting in the queue")  # right after the event it explains


def test_watch_of_a_job_nothing_waits_before_has_no_queue_line(store, queued):
    lines = []
    thread = threading.Timer(0.3, lambda: store.request_cancel(queued.id))
    thread.start()
    watch(store, queued.id, verbose=False, write=lines.append, poll_s=0.05)
    thread.join()
    assert not any(line.startswith("Waiting in the queue") for line in lines)
