"""A full disk while a job saves (an epoch checkpoint, the resumable state, the final model) fails
the job cleanly: error code `disk_full`, a message naming the folder, no half-written folder left,
nothing registered for what was not saved, and the store still consistent."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.helpers.tiny_models import write_classification_jsonl
from tunelab.store import Store
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def job(tiny_models, tmp_path):
    store = Store()
    train = write_classification_jsonl(tmp_path / "train.jsonl", 40)
    created, _ = create_job(store, JobRequest(str(train), str(tiny_models.encoder), None,
                                              {"n_epochs": 2, "batch_size": 8}))
    return store, store.claim_next_job(os.getpid())


def _hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*")) if folder.exists() else []


def _assert_failed_cleanly(store, job, folder_part: str):
    assert job.status == "failed"
    assert job.error["code"] == "disk_full"
    assert "No space left on the device" in job.error["message"] and folder_part in job.error["message"]
    assert job.finished_at is not None and job.fine_tuned_model is None
    assert store.list_models() == []
    assert store.list_events(job.id)[-1].message.startswith("Job failed: No space left on the device")
    assert _hidden_leftovers(store.job_dir(job.id)) == []


def test_full_disk_at_an_epoch_checkpoint(job, monkeypatch):
    store, claimed = job
    monkeypatch.setattr("tunelab.training.runner.save_fine_tuned", _full)
    done = run_job(store, claimed)
    _assert_failed_cleanly(store, done, str(store.job_dir(done.id) / "checkpoints" / "epoch-1"))
    assert store.list_checkpoints(done.id) == []  # the checkpoint that was not saved is not registered
    assert not (store.job_dir(done.id) / "checkpoints" / "epoch-1").exists()


def test_full_disk_at_the_resumable_state(job, monkeypatch):
    store, claimed = job
    store.update_job(claimed.id, hyperparams={**claimed.hyperparams, "checkpoint_seconds": 0.0})
    monkeypatch.setattr("accelerate.Accelerator.save_state", _full)
    done = run_job(store, store.get_job(claimed.id))
    _assert_failed_cleanly(store, done, str(store.job_dir(done.id)))
    work = store.job_dir(done.id)
    assert not (work / "resume.tmp").exists() and not (work / "resume").exists()


def test_full_disk_at_the_final_model(job, monkeypatch):
    store, claimed = job
    from tunelab.training import runner

    real = runner.save_fine_tuned

    def final_fails(model, tokenizer, folder, meta):
        if Path(folder).name.startswith(".final"):
            _full()
        real(model, tokenizer, folder, meta)

    monkeypatch.setattr("tunelab.training.runner.save_fine_tuned", final_fails)
    done = run_job(store, claimed)
    _assert_failed_cleanly(store, done, str(store.job_dir(done.id) / "final"))
    # The epochs saved before stay registered and on disk; no model folder was half-written.
    assert [c.epoch for c in store.list_checkpoints(done.id)] == [1, 2]
    assert all(Path(c.path).exists() for c in store.list_checkpoints(done.id))
    assert not (store.job_dir(done.id) / "final").exists()
    assert not (store.home / "models").exists() or list((store.home / "models").iterdir()) == []


def test_full_disk_as_safetensors_says_it(job, monkeypatch):
    """safetensors reports ENOSPC as its own SafetensorError, not an OSError (QA: a 30 MB disk
    failed the job with `SafetensorError: ... (os error 28)` instead of `disk_full`)."""
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    store, claimed = job
    monkeypatch.setattr("tunelab.training.runner.save_fine_tuned", full)
    done = run_job(store, claimed)
    _assert_failed_cleanly(store, done, str(store.job_dir(done.id) / "checkpoints" / "epoch-1"))
