"""Several `tunelab worker` processes on one PostgreSQL store and one shared TUNELAB_HOME: every job
runs exactly once, and a job whose worker is killed with kill -9 is resumed by another worker once
the lease (a short one here) has run out. Skipped when no PostgreSQL server answers."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.helpers.tiny_models import write_classification_jsonl
from tests.helpers.waiting import wait_for
from tunelab.store import Store
from tunelab.training.planning import JobRequest, create_job

pytestmark = pytest.mark.slow  # worker processes, kill -9

LEASE = 4.0
N_JOBS = 20
N_WORKERS = 3


def _wait(predicate, timeout: float, every: float = 0.2):
    return wait_for(predicate, timeout, every)


def test_three_workers_run_twenty_jobs_once_and_survive_a_kill_9(postgres_url, tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_LEASE_SECONDS", str(LEASE))
    monkeypatch.setenv("TUNELAB_DEVICE", "cpu")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    store = Store()
    assert store.shared
    # The first job is long and checkpoints often: its worker is the one killed.
    big = write_classification_jsonl(tmp_path / "big.jsonl", 900)
    long_job, _ = create_job(store, JobRequest(str(big), str(tiny_models.encoder), None,
                                               {"n_epochs": 3, "batch_size": 8, "checkpoint_seconds": 0.5}))
    small = write_classification_jsonl(tmp_path / "small.jsonl", 40)
    jobs = [long_job] + [create_job(store, JobRequest(str(small), str(tiny_models.encoder), None,
                                                      {"n_epochs": 1, "batch_size": 8}))[0]
                         for _ in range(N_JOBS - 1)]

    started = time.monotonic()
    logs = [open(tmp_path / f"worker-{i}.log", "wb") for i in range(N_WORKERS)]
    workers = [subprocess.Popen([sys.executable, "-m", "tunelab", "worker", "--device", "cpu", "--idle-exit", "120"],
                                stdout=logs[i], stderr=subprocess.STDOUT) for i in range(N_WORKERS)]
    by_pid = {p.pid: p for p in workers}
    try:
        resume = store.job_dir(long_job.id) / "resume" / "position.json"
        _wait(resume.exists, 300)
        running = store.get_job(long_job.id)
        assert running.status == "running" and running.worker_pid in by_pid
        killed = by_pid[running.worker_pid]
        killed_worker_id = running.worker_id
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()

        _wait(lambda: all(store.get_job(j.id).is_terminal for j in jobs), 600, every=1.0)
        elapsed = time.monotonic() - started
        for proc in workers:
            if proc is not killed:
                proc.send_signal(signal.SIGTERM)  # idle: the same clean stop as Ctrl-C
        codes = [proc.wait(timeout=60) for proc in workers if proc is not killed]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for fh in logs:
            fh.close()
    print(f"\n{N_JOBS} jobs on {N_WORKERS} workers (one killed) in {elapsed:.0f} s")
    assert codes == [0] * (N_WORKERS - 1), [(tmp_path / f"worker-{i}.log").read_text()[-2000:] for i in range(N_WORKERS)]

    done = {j.id: store.get_job(j.id) for j in jobs}
    assert [j.status for j in done.values()] == ["succeeded"] * N_JOBS, {i: j.error for i, j in done.items() if j.error}

    # Exactly once: one attempt, one start and one model per job, except the killed one.
    models = Counter(m.job_id for m in store.list_models())
    for job_id, job in done.items():
        messages = Counter(e.message for e in store.list_events(job_id))
        assert messages["Job succeeded."] == 1, job_id
        assert sum(n for m, n in messages.items() if m.startswith("New fine-tuned model created")) == 1
        assert models[job_id] == 1
        if job_id != long_job.id:
            assert job.attempts == 1, job_id
            assert messages["Fine-tuning job started."] == 1
            assert messages["Resuming fine-tuning job from its last checkpoint."] == 0
    assert len(models) == N_JOBS

    # The killed worker's job: re-queued after the lease, resumed (not restarted) by another worker.
    resumed = done[long_job.id]
    assert resumed.attempts == 2
    assert resumed.worker_id != killed_worker_id
    messages = [e.message for e in store.list_events(long_job.id)]
    assert messages.count("Fine-tuning job started.") == 1
    assert messages.count("Resuming fine-tuning job from its last checkpoint.") == 1
    assert any("stopped heartbeating" in m and "resume from its last checkpoint" in m for m in messages)
    assert any(m.startswith("Resumed at step") for m in messages)
    assert store.get_worker(killed_worker_id).status == "lost"
    with open(store.get_file(resumed.result_file).path) as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == list(range(1, 3 * 113 + 1))  # no row lost or doubled by the resume
    # Work was shared: more than one worker ran jobs.
    assert len({j.worker_id for j in done.values()}) >= 2
