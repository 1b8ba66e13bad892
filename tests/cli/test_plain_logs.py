"""Logs that read cleanly where nobody watches a terminal (`make demo > log`, CI, `2>&1 | tee`):
no progress bar, so no carriage returns and no bar fragments, every event once, and the notices
printed before the stream (alias, method) not repeated as events."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import run_cli
from tunelab.jobs.progress import interactive, watch
from tunelab.store import Store
from tunelab.store.records import RUNNING, SUCCEEDED


@pytest.fixture
def no_worker(monkeypatch):
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)


def play_worker(store: Store, steps: int = 6, validate_every: int = 3) -> threading.Thread:
    """What a worker writes for the next queued job: step events, some with validation, the end."""
    def run():
        deadline = time.monotonic() + 20
        while not store.list_jobs() and time.monotonic() < deadline:
            time.sleep(0.02)
        job = store.list_jobs()[0]
        store.update_job(job.id, status=RUNNING)
        store.add_event(job.id, "Fine-tuning job started.")
        for step in range(1, steps + 1):
            validated = step % validate_every == 0
            store.add_event(job.id, f"Step {step}/{steps}: training loss=1.0" + (", validation loss=0.9" if validated else ""),
                            data={"step": step, "total_steps": steps, "loss": 1.0,
                                  "validation_loss": 0.9 if validated else None})
            time.sleep(0.01)
        store.add_event(job.id, "Job succeeded.")
        store.update_job(job.id, status=SUCCEEDED, fine_tuned_model="enc:ft-personal-2026-01-01-00-00-00")
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_pipe_is_not_interactive(capsys):
    assert not interactive()  # pytest captures stderr: no terminal


def test_create_without_a_terminal_prints_plain_lines_once(tiny_models, no_worker, capsys, monkeypatch):
    monkeypatch.setattr("tunelab.jobs.follow.POLL_SECONDS", 0.05)
    thread = play_worker(Store())
    code = run_cli("api", "fine_tunes.create", "-t", tiny_models.train, "-v", tiny_models.valid, "-m", "ada",
                   "--compute_classification_metrics")
    thread.join()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "\r" not in captured.out + captured.err
    assert captured.err == ""  # no bar fragments
    lines = [line for line in captured.out.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), "a line printed twice"
    for notice in ("is an alias", "Method: "):
        assert sum(notice in line for line in lines) == 1, notice
    # without a bar, validation steps and the last step are the progress; training-only steps are not shown
    assert any("Step 3/6" in line for line in lines) and any("Step 6/6" in line for line in lines)
    assert not any("Step 1/6" in line for line in lines)
    assert "Job complete! Status: succeeded" in captured.out


def test_watch_without_a_bar_still_shows_progress_when_quiet(store_with_job, capsys):
    store, job = store_with_job
    lines = []
    watch(store, job.id, verbose=False, write=lines.append, poll_s=0.05)
    assert [re.sub(r"^\[[^]]+\] ", "", line) for line in lines] == [
        "Step 3/6: training loss=1.0, validation loss=0.9", "Step 6/6: training loss=1.0, validation loss=0.9"]
    assert "\r" not in "".join(capsys.readouterr())


@pytest.fixture
def store_with_job(tiny_models, no_worker):
    from tunelab.jobs.submit import job_request, submit

    store = Store()
    thread = play_worker(store)
    job = submit(store, job_request(tiny_models.train, str(tiny_models.encoder))).job
    thread.join()
    return store, job


@pytest.mark.slow  # starts the background worker, which trains a tiny model
def test_fine_tunes_create_into_a_pipe(tiny_models, tunelab_home, tmp_path):
    env = dict(os.environ, TUNELAB_WORKER_IDLE="2", PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "tunelab", "api", "fine_tunes.create", "-t", str(tiny_models.train), "-v",
         str(tiny_models.valid), "-m", str(tiny_models.encoder), "--n_epochs", "1", "--compute_classification_metrics"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out
    assert "\r" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), "a line printed twice"
    assert sum(line.startswith("Method: ") or "] Method: " in line for line in lines) == 1
    assert "Job complete! Status: succeeded" in out
    assert re.search(r"^\[[\d: -]+\] Step \d+/\d+: ", out, re.M)  # the steps, as plain event lines
