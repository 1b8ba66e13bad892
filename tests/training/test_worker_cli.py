"""`tunelab worker` on both stores, without worker processes (jobs run in the test's process):
options, one worker per SQLite home, --once, --list, handing a job back when stopped, and a worker
that lost its lease writing nothing more about the job."""

from __future__ import annotations

import fcntl
import os

import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import write_classification_jsonl
from tunelab.errors import InvalidInputError
from tunelab.store import Store
from tunelab.training import worker as worker_mod
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job
from tunelab.training.worker import WorkerOptions


@pytest.fixture
def small_job(tiny_models, tmp_path):
    store = Store()
    train = write_classification_jsonl(tmp_path / "train.jsonl", 24)
    job, _ = create_job(store, JobRequest(str(train), str(tiny_models.encoder), None, {"n_epochs": 1, "batch_size": 8}))
    return store, job


def test_options_are_checked_together():
    with pytest.raises(InvalidInputError) as err:
        WorkerOptions(device="tpu", num_processes=2, lease_seconds=0)
    text = err.value.render()
    assert "device must be cpu, cuda or cuda:N" in text and "--launcher accelerate" in text and "lease" in text
    WorkerOptions(device="cuda:1", launcher="accelerate", num_processes=2, lease_seconds=5)


def test_lease_from_the_environment(monkeypatch):
    monkeypatch.setenv("TUNELAB_LEASE_SECONDS", "7.5")
    assert WorkerOptions().lease_seconds == 7.5
    monkeypatch.setenv("TUNELAB_LEASE_SECONDS", "soon")
    with pytest.raises(InvalidInputError, match="TUNELAB_LEASE_SECONDS"):
        WorkerOptions()


def test_once_runs_one_job_and_exits(small_job, capsys, monkeypatch):
    monkeypatch.setenv("TUNELAB_DEVICE", "cpu")  # --device sets it for the process; restored afterwards
    store, job = small_job
    second, _ = create_job(store, JobRequest(job.training_file, job.model, None, {"n_epochs": 1, "batch_size": 8}))
    assert run_cli("worker", "--once", "--device", "cpu") == 0
    out = capsys.readouterr().out
    assert f"{job.id}: succeeded" in out and "Worker exiting after 1 job(s)." in out
    assert store.get_job(job.id).status == "succeeded"
    assert store.get_job(second.id).status == "queued"


def test_once_with_an_empty_queue_exits_at_once(capsys):
    Store()
    assert run_cli("worker", "--once") == 0
    assert "after 0 job(s)" in capsys.readouterr().out


def test_a_second_worker_on_a_sqlite_home_is_refused(capsys):
    store = Store()
    with open(store.home / "worker.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242")
        lock.flush()
        assert run_cli("worker", "--once") == 2
        out, err = capsys.readouterr()
        assert "Another worker (pid 4242)" in err and "PostgreSQL" in err
        assert "serving" not in out  # it used to claim "the only worker for this home" before the refusal
        assert run_cli("worker", "--list") == 0
        assert "it is running" in capsys.readouterr().out


def test_two_homes_sharing_one_sqlite_database_get_one_worker(small_job, tmp_path, monkeypatch, capsys):
    """TUNELAB_DATABASE_URL=sqlite:///… shared by two TUNELAB_HOMEs: the second home's worker took the first
    one's running job for an orphan of a dead worker and ran it a second time, at once."""
    store, job = small_job
    database = tmp_path / "shared.db"
    monkeypatch.setenv("TUNELAB_DATABASE_URL", f"sqlite:///{database}")
    first = Store(home=tmp_path / "home-a", url=f"sqlite:///{database}")
    job = first.create_job(model="ada", base_model="minilm-l6", method="classifier", training_file=job.training_file,
                           validation_file=None, hyperparams={"n_epochs": 1}, options={}, seed=0)
    with open(worker_mod._lock_path(first), "a+") as lock:  # what home-a's worker holds while it runs the job
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242")
        lock.flush()
        assert first.claim_next_job(4242).id == job.id
        monkeypatch.setenv("TUNELAB_HOME", str(tmp_path / "home-b"))
        assert run_cli("worker", "--once") == 2
        out, err = capsys.readouterr()
        assert f"Another worker (pid 4242) already serves the SQLite database {database}." in err
        assert first.get_job(job.id).status == "running" and first.get_job(job.id).worker_pid == 4242
        assert run_cli("worker", "--list") == 0
        assert f"one worker for the SQLite database {database}; it is running" in capsys.readouterr().out


def test_a_stopped_worker_hands_its_job_back(small_job, monkeypatch):
    store, job = small_job

    def interrupted(store, job, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tunelab.training.runner.run_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        worker_mod.run_worker(store, WorkerOptions(once=True))
    back = store.get_job(job.id)
    assert back.status == "queued" and back.attempts == 0  # the interruption is not counted
    assert "is back in the queue" in store.list_events(job.id)[-1].message


def test_a_job_whose_lease_is_lost_is_left_alone(small_job):
    store, job = small_job
    claimed = store.claim_next_job(os.getpid())
    events_before = len(store.list_events(job.id))
    after = run_job(store, claimed, abandoned=lambda: True)
    assert after.status == "running"  # whoever holds it now finishes it
    assert store.list_models() == []
    new = [e.message for e in store.list_events(job.id)][events_before:]
    assert not any(m.startswith(("Job failed", "Job cancelled", "Job succeeded")) for m in new)


def test_postgres_worker_registers_and_stops(postgres_url, capsys):
    assert run_cli("worker", "--once", "--lease", "5") == 0
    out = capsys.readouterr().out
    assert "serving postgresql+psycopg://" in out and "(lease 5 s)" in out
    store = Store()
    assert store.list_workers() == []
    assert [w.status for w in store.list_workers(include_stopped=True)] == ["stopped"]
    live = store.register_worker(device="cuda:0", launcher="inprocess")
    assert run_cli("worker", "--list") == 0
    listed = capsys.readouterr().out
    assert live.id in listed and "cuda:0" in listed and f"(pid {live.pid})" in listed


def test_a_postgres_worker_whose_home_is_not_the_shared_folder_is_refused(postgres_url, tmp_path, monkeypatch,
                                                                       capsys):
    """A machine with another TUNELAB_HOME (or without the shared folder mounted) used to take jobs and fail
    them with "no such file", or keep their models where no other machine sees them."""
    train = tmp_path / "train.jsonl"
    train.write_text('{"prompt": "a", "completion": " 1"}\n')
    shared = Store(home=tmp_path / "shared", url=postgres_url)
    uploaded = shared.add_file(train, n_rows=1)
    shared.add_file(train, purpose="fine-tune-results")  # a worker's results file does not count
    assert run_cli("worker", "--once") == 2  # this test's TUNELAB_HOME is another folder
    err = capsys.readouterr().err
    assert f"is not the store's shared folder: the store's files are in {tmp_path / 'shared'} (e.g. {uploaded.id}" \
        in err
    assert f"set TUNELAB_HOME={tmp_path / 'shared'}" in err and "Traceback" not in err
    assert Store().list_workers(include_stopped=True) == []  # refused before registering

    monkeypatch.setenv("TUNELAB_HOME", str(tmp_path / "shared"))
    os.unlink(uploaded.path)  # the same path, but the shared folder is not mounted here
    assert run_cli("worker", "--once") == 2
    err = capsys.readouterr().err
    assert f"{uploaded.path}, which this machine cannot read (is the shared folder mounted here?)" in err

    with open(uploaded.path, "w") as fh:
        fh.write(train.read_text())
    assert run_cli("worker", "--once") == 0
    capsys.readouterr()

    # A client with another TUNELAB_HOME uploading once does not stop the workers that see the shared folder.
    Store(home=tmp_path / "laptop", url=postgres_url).add_file(train, n_rows=1)
    assert run_cli("worker", "--once") == 0


def test_worker_list_ages_heartbeats_on_the_database_clock(postgres_url, monkeypatch, capsys):
    """A machine whose clock is an hour ahead listed every live worker as lost (its own clock minus the
    database's heartbeat time)."""
    import time

    store = Store()
    live = store.register_worker(device="cpu", launcher="inprocess")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    assert run_cli("worker", "--list") == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith(live.id))
    assert "expired" not in line and "silent" not in line, line


def test_worker_list_says_when_a_worker_has_gone_silent():
    from tunelab.cli.worker import heartbeat_text

    assert heartbeat_text(12, 60) == "12 s ago"
    assert heartbeat_text(41, 60) == "41 s ago (silent: declared lost in 19 s unless it beats)"
    assert "expired: lost" in heartbeat_text(75, 60)
    assert heartbeat_text(-2, 60) == "0 s ago"  # clocks of two machines a little apart


def test_ensure_worker_on_postgres_starts_one_only_when_none_heartbeats(postgres_url, monkeypatch):
    started = []

    class FakePopen:
        def __init__(self, cmd, env, **kwargs):
            started.append(env)
            self.pid = 12345

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(worker_mod.subprocess, "Popen", FakePopen)
    store = Store()
    assert worker_mod.ensure_worker(store) == 12345
    assert started[0]["TUNELAB_DATABASE_URL"].startswith("postgresql+psycopg://")
    store.register_worker()
    assert worker_mod.ensure_worker(store) is None
    assert len(started) == 1


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_a_worker_declared_lost_notices_within_a_heartbeat(postgres_url):
    from sqlalchemy import text

    from tunelab.training.worker import Lease

    store = Store()
    lease = Lease(store, WorkerOptions(lease_seconds=1.0))
    try:
        assert not lease.lost.wait(0.8)  # heartbeats keep it
        with store.engine.begin() as conn:  # another worker found it stale and took its job
            conn.execute(text("UPDATE workers SET status = 'lost' WHERE id = :w"), {"w": lease.worker_id})
        assert lease.lost.wait(3)
        old = lease.worker_id
        lease.register()
        assert lease.worker_id != old and not lease.lost.is_set()
        assert store.get_worker(lease.worker_id).status == "running"
    finally:
        lease.close()
    assert store.get_worker(lease.worker_id).status == "stopped"


@pytest.mark.parametrize("visible,device,expected", [
    (None, "cuda:1", "1"),
    ("4,5,6", "cuda:1", "5"),  # N counts the GPUs this machine already lets the worker see
    (None, "cuda", None),
])
def test_cuda_n_pins_the_worker_to_that_gpu(monkeypatch, visible, device, expected):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setenv("TUNELAB_DEVICE", "")
    worker_mod._use_device(device)
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == (expected if expected is not None else visible)
    assert os.environ["TUNELAB_DEVICE"] == "cuda"


def test_the_readme_documents_several_workers():
    from tests.conftest import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Several workers and machines (PostgreSQL)", 1)[1].split("\n## ", 1)[0]
    for command in ("tunelab worker --device cuda:0", "tunelab worker --list", "--launcher accelerate --num-processes 2",
                    "TUNELAB_LEASE_SECONDS", "tunelab store backup --out", "tunelab models prune --keep",
                    "tunelab models prune --model", "What must be shared", "Not shared"):
        assert command in section, command
