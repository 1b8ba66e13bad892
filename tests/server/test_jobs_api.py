"""Fine-tuning job endpoints without training: validation, paging, cancel, and the legacy API.
The worker is not started here (ensure_worker is stubbed), so jobs stay queued."""

from __future__ import annotations

import json

import openai
import pytest


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    started = []
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: started.append(store) or None)
    return started


@pytest.fixture
def uploaded(client, training_files):
    train, valid = training_files
    return (client.files.create(file=open(train, "rb"), purpose="fine-tune").id,
            client.files.create(file=open(valid, "rb"), purpose="fine-tune").id)


def test_create_starts_the_worker_and_maps_auto(client, uploaded, tiny_models, no_worker):
    train, valid = uploaded
    job = client.fine_tuning.jobs.create(
        model=str(tiny_models.encoder), training_file=train, validation_file=valid, seed=7,
        hyperparameters={"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": 0.5},
        metadata={"chapter": "4.6.3"})
    assert no_worker, "ensure_worker was not called"
    assert job.status == "queued" and job.seed == 7 and job.metadata == {"chapter": "4.6.3"}
    # "auto" is the default, resolved by training/recipes.py: a small file gets the most epochs (6)
    # and a batch of an eighth of its rows; the explicit multiplier wins
    assert job.hyperparameters.n_epochs == 6
    assert job.hyperparameters.learning_rate_multiplier == 0.5
    assert job.hyperparameters_full["batch_size"] == job.hyperparameters.batch_size
    assert job.hyperparameters.batch_size == 60 // 8
    assert job.method.type == "supervised"
    same = client.fine_tuning.jobs.retrieve(job.legacy_id)  # the legacy id names the same job
    assert same.id == job.id


def test_method_object_and_tunelab_hyperparameters(client, uploaded, tiny_models):
    train, _ = uploaded
    job = client.fine_tuning.jobs.create(
        model=str(tiny_models.encoder), training_file=train,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
        hyperparameters={"class_weights": True, "max_length": 64})  # tunelab's own hyperparameters too
    assert job.hyperparameters.n_epochs == 3
    assert job.hyperparameters_full["class_weights"] is True and job.hyperparameters_full["max_length"] == 64
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                       method={"type": "dpo", "dpo": {}})
    assert excinfo.value.param == "method.type"
    # another method's settings sent with type supervised were dropped silently
    for other, settings in (("dpo", {"hyperparameters": {"beta": 0.1}}), ("reinforcement", {"grader": {}})):
        with pytest.raises(openai.BadRequestError) as excinfo:
            client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                           method={"type": "supervised", other: settings})
        assert excinfo.value.param == f"method.{other}" and "trains supervised only" in excinfo.value.message


def test_validation_reports_every_problem(client, uploaded, tiny_models, training_files):
    train, valid = uploaded
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                       hyperparameters={"n_epochs": 0, "learning_rate_multiplier": -1},
                                       extra_body={"classification_n_classes": 3})
    message = excinfo.value.message
    assert "n_epochs" in message and "learning_rate_multiplier" in message
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train, validation_file=valid,
                                       extra_body={"classification_n_classes": 3})
    assert "classification_n_classes 3" in excinfo.value.message
    with pytest.raises(openai.BadRequestError) as excinfo:  # a server path is not a file id
        client.fine_tuning.jobs.create(model="ada", training_file=str(training_files[0]))
    assert excinfo.value.param == "training_file"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model="ada", training_file="file-0123456789abcdef01234567")
    assert excinfo.value.param == "training_file"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model="no-such-model", training_file=train)
    assert "no-such-model" in excinfo.value.message
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="ada", training_file=train, hyperparameters={"bogus": 1})
    assert client.fine_tuning.jobs.list().data == []



def test_an_unknown_hyperparameter_is_named_with_the_fix(client, uploaded, tiny_models):
    """`{"epochs": 2}` was refused as "Cannot create the fine-tuning job:\n  - epochs": the name alone,
    without saying it is unknown, what was meant or what is known."""
    train, _ = uploaded
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                       hyperparameters={"epochs": 2})
    message = excinfo.value.message
    assert "unknown hyperparameter 'epochs' (did you mean 'n_epochs'?)" in message
    assert "known: batch_size," in message
    assert excinfo.value.param == "hyperparameters"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model="no-such-model", training_file=train)
    assert excinfo.value.param == "model"

def test_list_pages_with_after(client, uploaded, tiny_models):
    train, _ = uploaded
    ids = [client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train).id for _ in range(3)]
    first = client.fine_tuning.jobs.list(limit=2)
    assert len(first.data) == 2 and first.has_more
    rest = client.fine_tuning.jobs.list(limit=2, after=first.data[-1].id)
    assert not rest.has_more
    assert sorted(j.id for j in first.data + rest.data) == sorted(ids)
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1)] == [j.id for j in first.data + rest.data]
    with pytest.raises(openai.BadRequestError) as stale:  # was a 404 naming fine_tuning_job_id, not sent
        client.fine_tuning.jobs.list(after="ftjob-" + "0" * 24)
    assert stale.value.param == "after" and "cursor" in stale.value.message


def test_cancel_and_conflict(client, uploaded, tiny_models):
    train, _ = uploaded
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.ConflictError) as excinfo:
        client.fine_tuning.jobs.cancel(job.id)
    assert excinfo.value.status_code == 409
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
    assert events[0] == "Job cancelled before it started."


def test_file_in_use_by_a_queued_job_cannot_be_deleted(client, uploaded, tiny_models):
    train, _ = uploaded
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train)
    with pytest.raises(openai.ConflictError):
        client.files.delete(train)
    client.fine_tuning.jobs.cancel(job.id)
    assert client.files.delete(train).deleted


def test_checkpoints_empty_before_training(client, uploaded, tiny_models):
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=uploaded[0])
    page = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert page.data == [] and not page.has_more


def test_legacy_fine_tunes(http, uploaded, tiny_models):
    train, valid = uploaded
    response = http.post("/v1/fine-tunes", json={"training_file": train, "validation_file": valid,
                                                 "model": str(tiny_models.encoder), "n_epochs": 2,
                                                 "compute_classification_metrics": True,
                                                 "classification_n_classes": 5})
    assert response.status_code == 200, response.text
    fine_tune = response.json()
    assert fine_tune["object"] == "fine-tune" and fine_tune["id"].startswith("ft-")
    assert fine_tune["status"] == "pending" and fine_tune["hyperparams"]["n_epochs"] == 2
    assert fine_tune["training_files"][0]["id"] == train and fine_tune["validation_files"][0]["id"] == valid
    assert fine_tune["events"][0]["message"] == f"Created fine-tune: {fine_tune['id']}"  # the legacy texts
    # OpenAI's fields in its order, then our marked extensions
    assert list(fine_tune)[:13] == ["id", "object", "model", "created_at", "events", "fine_tuned_model", "hyperparams",
                                    "organization_id", "result_files", "status", "validation_files", "training_files",
                                    "updated_at"]
    assert list(fine_tune)[13:] == ["job_id", "base_model", "parent_model", "cumulative_epochs", "trained_tokens",
                                    "train_seconds", "error"]
    listed = http.get("/v1/fine-tunes").json()
    assert [f["id"] for f in listed["data"]] == [fine_tune["id"]]
    assert http.get(f"/v1/fine-tunes/{fine_tune['id']}").json()["status"] == "pending"
    cancelled = http.post(f"/v1/fine-tunes/{fine_tune['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    events = http.get(f"/v1/fine-tunes/{fine_tune['id']}/events").json()["data"]
    assert events[0]["message"].startswith("Created") and events[-1]["message"] == "Fine-tune cancelled"
    assert all(e["object"] == "fine-tune-event" for e in events)
    streamed = http.get(f"/v1/fine-tunes/{fine_tune['id']}/events", params={"stream": "true"})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    lines = [l for l in streamed.text.split("\n\n") if l]
    assert lines[-1] == "data: [DONE]"
    assert [json.loads(l.removeprefix("data: "))["message"] for l in lines[:-1]] == [e["message"] for e in events]
    bad = http.post("/v1/fine-tunes", json={"training_file": train, "model": str(tiny_models.encoder), "n_epochs": 0})
    assert bad.status_code == 400 and "n_epochs" in bad.json()["error"]["message"]


def test_metadata_limits_and_the_param_of_a_bad_value(client, uploaded, tiny_models):
    """QA: 17 metadata pairs made a job (OpenAI allows 16, as chat completions here already checked);
    a hyperparameter out of range came back with `param` null, and a bad method type with
    `param` 'method.MethodIn.type' (pydantic's name of the union member)."""
    train, _ = uploaded
    model = str(tiny_models.encoder)
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=model, training_file=train, metadata={f"k{i}": "v" for i in range(17)})
    assert excinfo.value.param == "metadata" and "at most 16" in excinfo.value.message
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=model, training_file=train, metadata={"k": "v" * 513})
    assert excinfo.value.param == "metadata"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=model, training_file=train, hyperparameters={"n_epochs": 0})
    assert excinfo.value.param == "hyperparameters.n_epochs"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=model, training_file=train,
                                       method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 0}}})
    assert excinfo.value.param == "hyperparameters.batch_size"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=model, training_file=train, method={"type": "xyz"})
    assert excinfo.value.param == "method.type"
    with pytest.raises(openai.BadRequestError) as excinfo:  # what the model cannot learn names the model
        client.fine_tuning.jobs.create(model=model, training_file=train, hyperparameters={"method": "lm"})
    assert excinfo.value.param == "model" and "is an encoder" in excinfo.value.message
    assert client.fine_tuning.jobs.list().data == []
    job = client.fine_tuning.jobs.create(model=model, training_file=train, metadata={f"k{i}": "v" for i in range(16)})
    assert len(job.metadata) == 16


def test_a_running_job_estimates_its_finish(client, store, uploaded, tiny_models):
    """QA: `estimated_finish` was always null; OpenAI gives a running job's estimate."""
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=uploaded[0])
    assert job.estimated_finish is None  # queued
    store.update_job(job.id, status="running")
    assert client.fine_tuning.jobs.retrieve(job.id).estimated_finish is None  # no step yet
    event = store.add_event(job.id, "Step 10/40: training loss=1.0",
                            data={"event": "step", "step": 10, "total_steps": 40, "elapsed": 20.0, "loss": 1.0})
    expected = event.created_at + 60  # 2 s a step, 30 steps left
    assert client.fine_tuning.jobs.retrieve(job.id).estimated_finish == expected
    assert [j.estimated_finish for j in client.fine_tuning.jobs.list()] == [expected]
    store.update_job(job.id, status="succeeded")
    assert client.fine_tuning.jobs.retrieve(job.id).estimated_finish is None


def test_hyperparameters_are_strictly_typed(client, uploaded, tiny_models):
    """QA: `"n_epochs": true` made a job of 1 epoch (pydantic's lax bool -> int); OpenAI refuses the type."""
    for name, value in [("n_epochs", True), ("n_epochs", "3"), ("batch_size", 2.5), ("learning_rate_multiplier", True)]:
        with pytest.raises(openai.BadRequestError) as excinfo:
            client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=uploaded[0],
                                           hyperparameters={name: value})
        assert excinfo.value.param == f"hyperparameters.{name}", (name, value)
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=uploaded[0],
                                         hyperparameters={"n_epochs": 2, "learning_rate_multiplier": 2})
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.learning_rate_multiplier == 2.0
