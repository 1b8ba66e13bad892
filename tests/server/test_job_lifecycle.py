"""Jobs behave as OpenAI documents them, driven through the official client: cancel answers
`cancelled` and the training stops within seconds; pause keeps a checkpoint and resume continues
from it; checkpoints are callable models; metric events, the result file's columns and error codes
use OpenAI's names; the jobs list filters by metadata. The training runs in this process (a worker
thread on a tiny random-weight model), so no worker process is started."""

from __future__ import annotations

import csv
import io
import time

import openai
import pytest

from tests.helpers.tiny_models import write_classification_jsonl
from tests.helpers.waiting import wait_for
from tests.server.conftest import in_process_worker, stop_in_process_worker

OPENAI_METRICS = {"step", "train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy",
                  "full_valid_loss", "full_valid_mean_token_accuracy"}


@pytest.fixture(autouse=True)
def thread_worker(monkeypatch, store):
    """ensure_worker starts an in-process worker thread (one job, then it stops) instead of a process."""
    threads = in_process_worker(store, monkeypatch, idle_exit=1.0)
    yield threads
    stop_in_process_worker(store, threads)


def _upload(client, path) -> str:
    return client.files.create(file=open(path, "rb"), purpose="fine-tune").id


def _messages(client, job_id) -> list[str]:
    return [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000).data][::-1]


@pytest.mark.slow  # two jobs train (a few seconds)
def test_a_job_through_the_client(client, store, tiny_models, tmp_path, thread_worker):
    train = _upload(client, write_classification_jsonl(tmp_path / "train.jsonl", 40))
    valid = _upload(client, write_classification_jsonl(tmp_path / "valid.jsonl", 10, seed=1))
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train, validation_file=valid,
                                         hyperparameters={"n_epochs": 2, "batch_size": 8},
                                         metadata={"team": "reviews"})
    other = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                           hyperparameters={"n_epochs": 1}, metadata={"team": "other"})
    done = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed") and j)
    assert done.status == "succeeded", done.error
    wait_for(lambda: client.fine_tuning.jobs.retrieve(other.id).status == "succeeded")

    # metadata[key]=value filters the list (the client sends the deep-object query)
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "reviews"})] == [job.id]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "nobody"})] == []
    assert {j.id for j in client.fine_tuning.jobs.list()} == {job.id, other.id}

    # metric events carry OpenAI's keys; the whole (small) validation file is the full_valid pair
    metrics = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data if e.type == "metrics"]
    assert metrics and all({"step", "train_loss", "train_mean_token_accuracy"} <= set(d) for d in metrics)
    assert any(OPENAI_METRICS <= set(d) for d in metrics)

    # the current endpoint's result file has the current columns
    content = client.files.content(done.result_files[0]).text
    header = next(csv.reader(io.StringIO(content)))
    assert header[:5] == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    assert "training_loss" not in header

    # every checkpoint kept on disk is a callable model
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == sorted((c.step_number for c in checkpoints), reverse=True)
    assert checkpoints[0].metrics.full_valid_loss is not None
    for checkpoint in checkpoints:
        name = checkpoint.fine_tuned_model_checkpoint
        assert name.startswith(done.fine_tuned_model + ":ckpt-step-")
        answer = client.completions.create(model=name, prompt="great good love perfect\n\n###\n\n", max_tokens=1,
                                           temperature=0, logprobs=5)
        assert answer.choices[0].text.strip() in {"1", "2", "3", "4", "5"}
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=done.fine_tuned_model + ":ckpt-step-99999", prompt="x", max_tokens=1)
    # and a job continues from one, as OpenAI allows
    earliest = checkpoints[-1]
    child = client.fine_tuning.jobs.create(model=earliest.fine_tuned_model_checkpoint, training_file=train,
                                           hyperparameters={"n_epochs": 1, "batch_size": 8})
    child = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(child.id)).status in ("succeeded", "failed") and j)
    assert child.status == "succeeded", child.error
    assert client.models.retrieve(child.fine_tuned_model).parent == earliest.fine_tuned_model_checkpoint


@pytest.mark.slow  # a job trains
def test_legacy_endpoint_keeps_legacy_result_columns(http, store, tiny_models, tmp_path, thread_worker):
    path = write_classification_jsonl(tmp_path / "train.jsonl", 24)
    file_id = http.post("/v1/files", files={"file": open(path, "rb")}, data={"purpose": "fine-tune"}).json()["id"]
    fine_tune = http.post("/v1/fine-tunes", json={"training_file": file_id, "model": str(tiny_models.encoder),
                                                   "n_epochs": 1}).json()
    done = wait_for(lambda: (j := http.get(f"/v1/fine-tunes/{fine_tune['id']}").json())["status"] == "succeeded" and j)
    content = http.get(f"/v1/files/{done['result_files'][0]['id']}/content").text
    assert content.startswith("step,elapsed_tokens,elapsed_examples,training_loss,")


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_cancel_answers_cancelled_and_the_training_stops(client, store, tiny_models, tmp_path, thread_worker):
    train = _upload(client, write_classification_jsonl(tmp_path / "big.jsonl", 2000))
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                         hyperparameters={"n_epochs": 20, "batch_size": 4})
    wait_for(lambda: any(m.startswith("Step 3/") for m in _messages(client, job.id)))
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"  # at once, as OpenAI answers
    started = time.monotonic()
    wait_for(lambda: "Job cancelled." in _messages(client, job.id), timeout=30)
    assert time.monotonic() - started < 10  # the loop looks every second
    thread_worker[0].join(30)
    assert not thread_worker[0].is_alive()
    after = client.fine_tuning.jobs.retrieve(job.id)
    assert after.status == "cancelled" and after.fine_tuned_model is None and store.list_models() == []
    assert after.finished_at == cancelled.finished_at  # the stopping worker does not move it (it did by a second)
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.cancel(job.id)


@pytest.mark.slow  # 600 steps, so that the pause lands mid-training
def test_pause_keeps_the_checkpoint_and_resume_continues(client, store, tiny_models, tmp_path, thread_worker):
    train = _upload(client, write_classification_jsonl(tmp_path / "mid.jsonl", 1200))
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                         hyperparameters={"n_epochs": 2, "batch_size": 4})
    wait_for(lambda: any(m.startswith("Step 3/") for m in _messages(client, job.id)))
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    wait_for(lambda: any(m.startswith("Job paused; its checkpoint is saved") for m in _messages(client, job.id)),
          timeout=30)
    thread_worker[0].join(30)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    assert (store.job_dir(job.id) / "resume" / "position.json").exists()
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.pause(job.id)

    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "queued"
    done = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed") and j)
    assert done.status == "succeeded", done.error
    messages = _messages(client, job.id)
    assert any(m.startswith("Resumed at step") for m in messages)
    steps = [int(r[0]) for r in csv.reader(io.StringIO(client.files.content(done.result_files[0]).text))
             if r[0] != "step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 600  # no step lost or trained twice
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.resume(job.id)


def test_refused_job_names_openai_error_code(client, tmp_path, tiny_models):
    train = _upload(client, write_classification_jsonl(tmp_path / "t.jsonl", 20))
    unseen = tmp_path / "v.jsonl"
    unseen.write_text('{"prompt": "fine\\n\\n###\\n\\n", "completion": " 9"}\n')
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                       validation_file=_upload(client, unseen),
                                       extra_body={"compute_classification_metrics": True})
    assert excinfo.value.param == "validation_file" and excinfo.value.code == "invalid_validation_file"
    assert "never occur in the training file" in excinfo.value.message


def test_jobs_list_refuses_unknown_filters(http):
    response = http.get("/v1/fine_tuning/jobs", params={"status": "running"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "status"
    assert http.get("/v1/fine_tuning/jobs", params={"metadata": "null"}).status_code == 200


@pytest.mark.slow  # a job trains
def test_legacy_delete_takes_a_model_or_a_job(client, http, store, tiny_models, tmp_path, thread_worker):
    train = _upload(client, write_classification_jsonl(tmp_path / "train.jsonl", 24))
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train,
                                         hyperparameters={"n_epochs": 1})
    done = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status == "succeeded" and j)
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[0].fine_tuned_model_checkpoint
    refused = http.delete(f"/v1/models/{checkpoint}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "checkpoint"

    deleted = http.delete(f"/v1/fine-tunes/{done.fine_tuned_model}")
    assert deleted.status_code == 200 and deleted.json() == {"id": done.fine_tuned_model, "object": "model",
                                                             "deleted": True}
    assert http.get(f"/v1/models/{done.fine_tuned_model}").status_code == 404
    legacy_id = http.get(f"/v1/fine-tunes/{job.id}").json()["id"]
    gone = http.delete(f"/v1/fine-tunes/{legacy_id}")
    assert gone.status_code == 200 and gone.json() == {"object": "fine-tune", "id": legacy_id, "deleted": True}
    assert http.get(f"/v1/fine-tunes/{legacy_id}").status_code == 404
    assert http.delete("/v1/fine-tunes/ft-0123456789abcdef01234567").status_code == 404


def test_a_training_file_unusable_at_run_time_fails_with_openai_code(client, store, tiny_models, tmp_path,
                                                                      monkeypatch):
    from pathlib import Path

    from tunelab.training.worker import WorkerOptions, run_worker

    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda _store: None)
    train = _upload(client, write_classification_jsonl(tmp_path / "train.jsonl", 20))
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train)
    Path(store.get_file(train).path).write_text('{"prompt": "cut off in the mid')  # e.g. a disk problem
    run_worker(store, WorkerOptions(once=True, device="cpu"))
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error.code == "invalid_training_file"
    assert "malformed JSON" in failed.error.message


def test_a_job_failing_for_another_reason_has_a_snake_case_code(client, store, tiny_models, tmp_path, monkeypatch):
    """error.code was the Python class name ('InvalidInputError'); it is snake_case like OpenAI's codes."""
    import shutil

    from tunelab.training.worker import WorkerOptions, run_worker

    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda _store: None)
    base = shutil.copytree(tiny_models.encoder, tmp_path / "base")
    train = _upload(client, write_classification_jsonl(tmp_path / "train.jsonl", 20))
    job = client.fine_tuning.jobs.create(model=str(base), training_file=train)
    shutil.rmtree(base)  # the base model's folder was moved away before the job ran
    run_worker(store, WorkerOptions(once=True, device="cpu"))
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error.code == "invalid_input"
    assert str(base) in failed.error.message
