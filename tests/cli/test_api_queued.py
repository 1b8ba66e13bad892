"""`tunelab api` verbs on a queued job and on files, without training (the worker is stubbed):
what they print is the jobs layer's views, the same objects `/v1/fine-tunes` and `/v1/files` send."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import run_cli


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    started = []
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: started.append(store) or None)
    return started


def output(capsys) -> str:
    return capsys.readouterr().out


def test_a_queued_job_through_every_verb(tiny_models, capsys, no_worker):
    assert run_cli("api", "fine_tunes.create", "-t", tiny_models.train, "-v", tiny_models.valid,
                   "-m", tiny_models.encoder, "--n_epochs", "2", "--compute_classification_metrics",
                   "--no_follow") == 0
    out, err = capsys.readouterr()
    assert no_worker and f"Uploaded file from {tiny_models.train}: file-" in err
    printed = json.loads(out)  # stdout is the job's JSON, as the legacy CLI printed it
    job_id = re.search(r"Created fine-tune: (ft-\w+)", err).group(1)
    assert printed["id"] == job_id and printed["status"] == "pending"
    assert f"fine_tunes.follow -i {job_id}" in err

    assert run_cli("api", "fine_tunes.get", "-i", job_id) == 0
    job = json.loads(output(capsys))
    assert job["id"] == job_id and job["status"] == "pending" and job["object"] == "fine-tune"
    assert job["hyperparams"] == {"batch_size": 8, "learning_rate_multiplier": 0.5, "n_epochs": 2,  # auto
                                  "prompt_loss_weight": 0.0, "compute_classification_metrics": True,
                                  "method": "classifier", "seed": 42}
    assert job["events"][0]["message"] == f"Created fine-tune: {job_id}"
    assert job["events"][-1]["message"] == "Fine-tune enqueued"  # the legacy texts
    assert "fine_tuned_model" not in job and "error" not in job  # unset fields are left out, as before

    assert run_cli("api", "fine_tunes.list") == 0
    (listed,) = json.loads(output(capsys))["data"]
    assert listed["id"] == job_id and "events" not in listed
    assert run_cli("api", "fine_tunes.list", "--latest") == 0
    assert output(capsys).strip() == job_id

    assert run_cli("api", "fine_tunes.results", "-i", job_id) != 0
    assert "has no results yet (status: queued)" in capsys.readouterr().err
    assert run_cli("api", "fine_tunes.cancel", "-i", job_id) == 0
    assert json.loads(output(capsys))["status"] == "cancelled"
    assert run_cli("api", "fine_tunes.events", "-i", job_id) == 0
    events = json.loads(output(capsys))["data"]
    assert events[-1] == {"object": "fine-tune-event", "created_at": events[-1]["created_at"], "level": "info",
                          "message": "Fine-tune cancelled"}
    assert run_cli("api", "fine_tunes.follow", "-i", job_id) == 0  # an ended job: its events, then the verdict
    assert "Job cancelled." in output(capsys)
    assert run_cli("api", "fine_tunes.delete", "-i", job_id) == 0
    assert json.loads(output(capsys)) == {"object": "fine-tune", "id": job_id, "deleted": True}


def test_files_verbs(tiny_models, tmp_path, capsys):
    assert run_cli("api", "files.create", "-f", tiny_models.train) == 0
    record = json.loads(output(capsys))
    assert record["object"] == "file" and record["n_rows"] == 120 and record["status"] == "processed"
    assert run_cli("api", "files.list") == 0
    assert [f["id"] for f in json.loads(output(capsys))["data"]] == [record["id"]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "only a prompt"}\n')
    assert run_cli("api", "files.create", "-f", bad) == 2
    assert "completion" in capsys.readouterr().err
    assert run_cli("api", "files.delete", "-i", record["id"]) == 0
    assert json.loads(output(capsys)) == {"object": "file", "id": record["id"], "deleted": True}
