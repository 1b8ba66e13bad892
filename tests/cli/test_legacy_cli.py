"""The legacy CLI's details: --no_follow prints the job, follow prints the legacy event texts,
files.get, models.delete and fine_tunes.events --stream. The job is trained by a worker running in
this process (a tiny random-weight model), so no process is started."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import write_classification_jsonl


@pytest.fixture
def trained_job(tiny_models, tmp_path, monkeypatch, capsys):
    """A job created with --no_follow, then run to its end by an in-process worker."""
    from tunelab.store import Store
    from tunelab.training.worker import WorkerOptions, run_worker

    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)
    train = write_classification_jsonl(tmp_path / "train.jsonl", 40)
    assert run_cli("api", "fine_tunes.create", "-t", train, "-m", tiny_models.encoder, "--n_epochs", "2",
                   "--no_follow") == 0
    out, err = capsys.readouterr()
    job = json.loads(out)  # stdout is the job as JSON, as the legacy CLI printed it
    assert job["object"] == "fine-tune" and job["status"] == "pending" and job["hyperparams"]["n_epochs"] == 2
    assert f"Created fine-tune: {job['id']}" in err and f"Uploaded file from {train}" in err
    run_worker(Store(), WorkerOptions(once=True, device="cpu"))
    return job["id"]


def test_follow_prints_the_legacy_event_texts(trained_job, capsys):
    assert run_cli("api", "fine_tunes.follow", "-i", trained_job) == 0
    out = capsys.readouterr().out
    lines = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("[")]
    assert lines[0] == f"Created fine-tune: {trained_job}"
    for text in ("Fine-tune enqueued", "Fine-tune started", "Completed epoch 1/2", "Completed epoch 2/2",
                 "Fine-tune succeeded"):
        assert text in lines, text
    uploaded = next(line for line in lines if line.startswith("Uploaded model: "))
    assert lines.index("Completed epoch 2/2") < lines.index(uploaded) < lines.index("Fine-tune succeeded")
    assert "Job complete! Status: succeeded" in out

    assert run_cli("api", "fine_tunes.events", "-i", trained_job, "--stream") == 0
    streamed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    messages = iter(e["message"] for e in streamed)  # every event (follow leaves training-only steps out)
    assert all(line in messages for line in lines)  # ...in the same order, one JSON line each
    assert all(e["object"] == "fine-tune-event" for e in streamed)


@pytest.mark.slow  # a second job trains
def test_files_get_and_models_delete(trained_job, capsys):
    assert run_cli("api", "fine_tunes.get", "-i", trained_job) == 0
    job = json.loads(capsys.readouterr().out)
    file_id = job["training_files"][0]["id"]
    assert run_cli("api", "files.get", "-i", file_id) == 0
    assert json.loads(capsys.readouterr().out)["id"] == file_id
    model = job["fine_tuned_model"]
    assert run_cli("api", "models.delete", "-i", model) == 0
    assert json.loads(capsys.readouterr().out) == {"id": model, "object": "model", "deleted": True}
    assert run_cli("api", "models.delete", "-i", model) != 0
    assert "No such fine-tuned model" in capsys.readouterr().err
    assert run_cli("api", "files.get", "-i", "file-0123456789abcdef01234567") != 0
