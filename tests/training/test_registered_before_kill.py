"""A worker killed between registering a job's model and marking the job succeeded: the re-queued
job is finished with that model, not trained again into a second one."""

from __future__ import annotations

import os

from tunelab.store import Store
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job


def test_a_job_that_registered_its_model_is_finished_with_it_when_it_runs_again(tunelab_home, tiny_models):
    store = Store()
    create_job(store, JobRequest(str(tiny_models.train), str(tiny_models.encoder), None, {"n_epochs": 1},
                                 ClassificationOptions(False, None)))
    done = run_job(store, store.claim_next_job(os.getpid()))
    assert done.status == "succeeded"
    # What the store holds when the kill came right after register_model: the job still running.
    store.update_job(done.id, status="queued", fine_tuned_model=None, finished_at=None, worker_pid=None)
    again = run_job(store, store.claim_next_job(os.getpid()))
    assert again.status == "succeeded" and again.fine_tuned_model == done.fine_tuned_model
    assert again.result_file == done.result_file
    assert [m.id for m in store.list_models()] == [done.fine_tuned_model]
    messages = [e.message for e in store.list_events(done.id)]
    assert messages.count("Job succeeded.") == 1
    assert any("was registered before the worker stopped" in m for m in messages)
