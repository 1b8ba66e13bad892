"""Fixtures of the jobs-layer tests: a store in the test's TUNELAB_HOME, the background worker
either replaced by a recorder (`no_worker`) or real and quick to exit (`quick_worker`), and a
queued job made without training."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tunelab.store import Store


@pytest.fixture
def store(tunelab_home) -> Store:
    return Store()


@pytest.fixture
def no_worker(monkeypatch) -> list:
    """ensure_worker records its calls instead of starting a process: jobs stay queued."""
    started = []
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: started.append(store) or None)
    return started


@pytest.fixture
def quick_worker(monkeypatch, tunelab_home):
    """Real workers stop 2 s after their queue empties; one still alive after the test is stopped."""
    monkeypatch.setenv("TUNELAB_WORKER_IDLE", "2")
    yield
    try:
        pid = int((Path(tunelab_home) / "worker.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 15
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.2)
    if pid:
        os.kill(pid, signal.SIGTERM)


@pytest.fixture
def queued(store, tiny_models, no_worker):
    """A classifier job on the tiny encoder, queued (validation file, classification metrics)."""
    from tunelab.jobs.submit import job_request, submit

    return submit(store, job_request(tiny_models.train, str(tiny_models.encoder), tiny_models.valid,
                                     hyperparameters={"n_epochs": 2}, compute_classification_metrics=True,
                                     classification_n_classes=5)).job
