"""`tunelab serve` keeps the job queue served: a worker killed mid-job (kill -9, the OOM killer) while
only the server runs left its job `running` for good (QA: a 30-epoch job stayed `running` on the
dashboard, no worker alive, until someone ran a CLI follow). The server now starts a worker on start
and every few seconds when a job waits and none runs; that worker resumes the orphaned job."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import OperationalError

from tests.conftest import run_cli
from tests.helpers.waiting import wait_for
from tests.server.conftest import in_process_worker, make_client, stop_in_process_worker


def _orphaned_job(store, tiny_models, training_files):
    """A job a worker claimed and then died in: `running`, its worker's pid gone, no lock held."""
    from tunelab.jobs import submit

    train, valid = training_files
    request = submit.job_request(str(train), str(tiny_models.encoder), str(valid),
                                 hyperparameters={"n_epochs": 1, "batch_size": 8})
    job = submit.submit(store, request, start_worker=False).job
    store.update_job(job.id, status="running", worker_pid=2**22 + 17, attempts=1)
    return job


def test_a_job_left_running_by_a_dead_worker_is_resumed_while_only_the_server_runs(
        store, tiny_models, training_files, fake_predictors, monkeypatch):
    from tunelab.server import create_app

    job = _orphaned_job(store, tiny_models, training_files)
    threads = in_process_worker(store, monkeypatch, idle_exit=0.5)
    app = create_app(store, loader=fake_predictors.loader, worker_check_s=0.2)
    _, http = make_client(app)
    with http:  # the lifespan runs: the server is up, and nothing but it touches the store
        done = wait_for(lambda: (j := store.get_job(job.id)).is_terminal and j)
    stop_in_process_worker(store, threads, timeout=60)
    assert done.status == "succeeded", done.error
    assert any("stopped during the job" in e.message for e in store.list_events(job.id))


def test_the_watch_survives_a_failing_check_and_starts_nothing_without_work(store, tiny_models, training_files,
                                                                             fake_predictors, monkeypatch):
    from tunelab.jobs.submit import serve_the_queue
    from tunelab.server import create_app

    calls = []

    def ensure(_store):
        calls.append(time.monotonic())
        if len(calls) == 1:  # e.g. the database locked for longer than its busy timeout
            raise OperationalError("SELECT", {}, Exception("database is locked"))
        return None

    monkeypatch.setattr("tunelab.training.worker.ensure_worker", ensure)
    assert serve_the_queue(store) is None and not calls  # no job at all: no worker
    _orphaned_job(store, tiny_models, training_files)
    app = create_app(store, loader=fake_predictors.loader, worker_check_s=0.05)
    _, http = make_client(app)
    with http:
        wait_for(lambda: len(calls) >= 3, timeout=60)
        assert http.get("/v1/models").status_code == 200


@pytest.fixture
def captured(monkeypatch):
    calls = {}

    def fake_run(app, **kwargs):
        from uvicorn.importer import import_from_string

        calls["app"] = import_from_string(app)()

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.setattr("tunelab.netserve.ensure_can_listen", lambda host, port: None)
    return calls


def test_tunelab_serve_watches_the_queue(captured):
    from tunelab.jobs.follow import WORKER_CHECK_SECONDS

    assert run_cli("serve") == 0
    assert captured["app"].state.tunelab.settings["worker_check_s"] == WORKER_CHECK_SECONDS
