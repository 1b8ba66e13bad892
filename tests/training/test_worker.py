"""The worker is a real background process; a kill -9 mid-job must not lose the job."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.helpers.tiny_models import write_classification_jsonl
from tests.helpers.waiting import wait_for
from tunelab.store import Store
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.worker import ensure_worker, recover_orphans, worker_running


@pytest.fixture(autouse=True)
def one_thread_workers(monkeypatch):
    # The worker subprocess trains a tiny model; on 2 shared cores, torch's extra threads only
    # contend with the test process and make the timings swing by minutes.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _wait(predicate, timeout=180.0, every=0.2):
    return wait_for(predicate, timeout, every)


@pytest.mark.slow  # worker processes, kill -9
def test_kill_9_mid_job_resumes_from_checkpoint(tiny_models, tmp_path):
    train = write_classification_jsonl(tmp_path / "big.jsonl", 1500)
    store = Store()
    job, _ = create_job(store, JobRequest(str(train), str(tiny_models.decoder), str(tiny_models.valid),
                                          {"n_epochs": 6, "batch_size": 8, "checkpoint_seconds": 0.5,
                                           "method": "lm"},
                                          ClassificationOptions(True, 5)))
    assert ensure_worker(store) is not None
    resume = store.job_dir(job.id) / "resume" / "position.json"
    _wait(resume.exists)
    running = store.get_job(job.id)
    assert running.status == "running"
    first_attempt_seconds = json.loads(resume.read_text())["elapsed"]
    os.kill(running.worker_pid, signal.SIGKILL)
    _wait(lambda: not _alive(running.worker_pid), timeout=10)
    assert store.get_job(job.id).status == "running"  # nobody has noticed yet
    _wait(lambda: not worker_running(store), timeout=10)  # the kernel has released its lock
    assert ensure_worker(store) is not None
    done = _wait(lambda: (j := store.get_job(job.id)).is_terminal and j, timeout=300)
    assert done.status == "succeeded", done.error
    messages = [e.message for e in store.list_events(job.id)]
    assert any("re-queued to resume from its last checkpoint" in m for m in messages)
    assert any(m.startswith("Resumed at step") for m in messages)
    model = store.get_model(done.fine_tuned_model)
    assert (Path(model.path) / "model.safetensors").exists()
    assert done.attempts == 2
    assert not resume.exists()  # resume state is cleaned up after success
    assert done.train_seconds > first_attempt_seconds  # the killed attempt's training time is counted
    steps = [int(line.split(",")[0]) for line in open(store.get_file(done.result_file).path).read().splitlines()[1:]]
    assert steps == list(range(1, len(steps) + 1))  # no duplicated or missing rows after resume


def test_orphan_failed_after_too_many_attempts(tiny_models):
    store = Store()
    job, _ = create_job(store, JobRequest(str(tiny_models.train), str(tiny_models.encoder)))
    store.claim_next_job(999999)
    store.update_job(job.id, attempts=3)
    recover_orphans(store)
    job = store.get_job(job.id)
    assert job.status == "failed"
    assert "died" in job.error["message"]
    assert store.list_models() == []


def test_a_job_paused_by_a_worker_that_died_can_be_resumed(tiny_models):
    store = Store()
    job, _ = create_job(store, JobRequest(str(tiny_models.train), str(tiny_models.encoder)))
    store.claim_next_job(999999)
    store.request_pause(job.id)  # the worker died before it saved and handed the job back
    recover_orphans(store)
    assert store.request_resume(job.id).status == "queued"


@pytest.mark.slow  # a worker process trains until cancelled
def test_cancel_queued_and_running(tiny_models, tmp_path):
    store = Store()
    queued, _ = create_job(store, JobRequest(str(tiny_models.train), str(tiny_models.encoder)))
    assert store.request_cancel(queued.legacy_id).status == "cancelled"

    train = write_classification_jsonl(tmp_path / "big.jsonl", 3000)
    job, _ = create_job(store, JobRequest(str(train), str(tiny_models.encoder), None, {"n_epochs": 20, "batch_size": 4}))
    ensure_worker(store)
    _wait(lambda: store.get_job(job.id).status == "running")
    store.request_cancel(job.id)
    done = _wait(lambda: (j := store.get_job(job.id)).is_terminal and j, timeout=60)
    assert done.status == "cancelled"
    assert done.fine_tuned_model is None and store.list_models() == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours still answers; check its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
