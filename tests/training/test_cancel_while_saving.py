"""A job cancelled while it saves or registers its model (QA): the cancel was answered `cancelled`
at once, then the runner registered the model and overwrote the status with `succeeded`, so a
job the client was told had stopped came back finished, with a model. It now stays cancelled, and
no model is left for it."""

from __future__ import annotations

import os

from tunelab.store import Store
from tunelab.training import runner
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job


def _claimed(store, tiny_models):
    create_job(store, JobRequest(str(tiny_models.train), str(tiny_models.encoder), None, {"n_epochs": 1},
                                 ClassificationOptions(False, None)))
    return store.claim_next_job(os.getpid())


def test_a_job_cancelled_while_its_model_is_saved_stays_cancelled(tunelab_home, tiny_models, monkeypatch):
    store = Store()
    job = _claimed(store, tiny_models)
    answered = []
    real_save = runner.save_fine_tuned

    def save(model, tokenizer, folder, meta):
        if "final" in str(folder):  # the model's own folder, not an epoch checkpoint
            answered.append(store.request_cancel(job.id).status)
        return real_save(model, tokenizer, folder, meta)

    monkeypatch.setattr(runner, "save_fine_tuned", save)
    done = run_job(store, job)
    assert answered == ["cancelled"]
    assert done.status == "cancelled" and done.fine_tuned_model is None
    assert store.list_models() == []
    assert not (store.job_dir(job.id) / "final").exists()
    assert [e.message for e in store.list_events(job.id)][-1] == "Job cancelled."


def test_a_job_cancelled_while_its_model_is_registered_stays_cancelled(tunelab_home, tiny_models, monkeypatch):
    store = Store()
    job = _claimed(store, tiny_models)
    real_register = store.register_model

    def register(**kwargs):
        record = real_register(**kwargs)
        store.request_cancel(job.id)  # lands after the runner's last look at the job
        return record

    monkeypatch.setattr(store, "register_model", register)
    done = run_job(store, job)
    assert done.status == "cancelled" and done.fine_tuned_model is None
    assert store.list_models() == []
    assert store.get_job(job.id).status == "cancelled"


def test_update_job_unless_status(tunelab_home, tiny_models):
    store = Store()
    job = _claimed(store, tiny_models)
    store.request_cancel(job.id)
    assert store.update_job(job.id, unless_status="cancelled", status="succeeded").status == "cancelled"
    assert store.update_job(job.id, unless_status="failed", status="failed").status == "failed"
