"""The engine end to end on tiny random-weight models: both methods, continuation, results CSV.
(Model id allocation is tested on the store alone, in tests/store/test_store.py.)"""

from __future__ import annotations

import csv
import os

import pytest

from tunelab.store import Store
from tunelab.store.ids import MODEL_ID
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job

# Every test here trains (tiny models, in-process: seconds each, but a minute together on a busy
# 2-core machine). The fast tier still runs the runner through the `tiny_models` factory's trained
# models, and plans jobs in test_planning.py.
pytestmark = pytest.mark.slow

FAST = {"n_epochs": 2, "learning_rate_multiplier": 50.0, "batch_size": 8}


def _train(store, tiny_models, model, hp=None, opts=None, validation=True):
    job, _ = create_job(store, JobRequest(
        training_file=str(tiny_models.train), model=model,
        validation_file=str(tiny_models.valid) if validation else None,
        hyperparameters={**FAST, **(hp or {})}, classification=opts or ClassificationOptions(True, 5)))
    claimed = store.claim_next_job(os.getpid())
    assert claimed.id == job.id
    return run_job(store, claimed)


@pytest.mark.parametrize("model,hp,method", [
    ("enc", {}, "classifier"),
    ("dec", {}, "classifier"),
    ("dec", {"method": "lm"}, "lm"),
    ("dec", {"method": "lm", "lora": True}, "lm"),
    ("enc", {"lora": True, "class_weights": True}, "classifier"),
])
def test_methods_train_register_and_report(tiny_models, model, hp, method):
    store = Store()
    job = _train(store, tiny_models, str(tiny_models[model]), hp)
    assert job.status == "succeeded", job.error
    assert job.method == method
    record = store.get_model(job.fine_tuned_model)
    assert MODEL_ID.match(record.id), record.id
    assert record.labels == [" 1", " 2", " 3", " 4", " 5"]
    assert record.cumulative_epochs == 2
    assert [c.epoch for c in store.list_checkpoints(job.id)] == [1, 2]
    assert any(e.message.startswith("Device: CPU") for e in store.list_events(job.id))

    with open(store.get_file(job.result_file).path) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:9] == ["step", "elapsed_tokens", "elapsed_examples", "training_loss",
                                 "training_sequence_accuracy", "training_token_accuracy", "validation_loss",
                                 "validation_sequence_accuracy", "validation_token_accuracy"]
    assert "classification/accuracy" in rows[0] and "classification/weighted_f1_score" in rows[0]
    assert len(rows) == job.options["steps"] == 2 * 15
    filled = [r for r in rows if r["classification/accuracy"]]
    assert len(filled) == 2  # end of each epoch, from scoring every label
    assert all(r["validation_loss"] for r in filled)
    losses = [float(r["training_loss"]) for r in rows]
    assert sum(losses[-5:]) < sum(losses[:5])


def test_classifier_learns_the_toy_task(tiny_models):
    store = Store()
    job = _train(store, tiny_models, str(tiny_models.encoder), {"n_epochs": 10})
    assert job.options["final_metrics"]["classification/accuracy"] >= 0.8


def test_continued_training_registers_a_child(tiny_models):
    store = Store()
    parent = _train(store, tiny_models, str(tiny_models.encoder), {"n_epochs": 1})
    child = _train(store, tiny_models, parent.fine_tuned_model, {"n_epochs": 3})
    assert child.status == "succeeded", child.error
    model = store.get_model(child.fine_tuned_model)
    assert model.parent_id == parent.fine_tuned_model
    assert model.cumulative_epochs == 4
    assert child.options["cumulative_epochs"] == 4
    assert model.id != parent.fine_tuned_model


def test_binary_classification_columns(tiny_models, tmp_path):
    from tests.helpers.tiny_models import write_classification_jsonl

    train = write_classification_jsonl(tmp_path / "t.jsonl", 60, labels=("yes", "no"))
    valid = write_classification_jsonl(tmp_path / "v.jsonl", 20, seed=3, labels=("yes", "no"))
    store = Store()
    job, _ = create_job(store, JobRequest(str(train), str(tiny_models.encoder), str(valid), FAST,
                                          ClassificationOptions(True, None, "yes", [0.5, 2.0])))
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    with open(store.get_file(job.result_file).path) as fh:
        header = next(csv.reader(fh))
    for col in ["classification/accuracy", "classification/precision", "classification/recall",
                "classification/auroc", "classification/auprc", "classification/f1.0",
                "classification/f0.5", "classification/f2.0"]:
        assert col in header


def test_free_form_completions_train_with_lm(tiny_models, tmp_path):
    import json

    path = tmp_path / "gen.jsonl"
    with open(path, "w") as fh:
        for i in range(40):
            fh.write(json.dumps({"prompt": f"great dress {i % 7}\n\n###\n\n", "completion": f" the fabric is fine {i}\n"}) + "\n")
    store = Store()
    job, notices = create_job(store, JobRequest(str(path), str(tiny_models.decoder), None, FAST))
    assert job.method == "lm"
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    assert store.get_model(job.fine_tuned_model).labels is None


def test_reviews_longer_than_a_local_model_reads_train(tiny_models, tmp_path):
    # The tiny encoder has 128 positions; the default max_length is 256. The job failed at the first
    # long review with "The expanded size of the tensor ... must match the existing size".
    import json

    path = tmp_path / "long.jsonl"
    with open(path, "w") as fh:
        for i in range(40):
            fh.write(json.dumps({"prompt": " ".join(["good fabric"] * (60 + i)) + "\n\n###\n\n",
                                 "completion": f" {i % 2 + 1}"}) + "\n")
    store = Store()
    job, _ = create_job(store, JobRequest(training_file=str(path), model=str(tiny_models["enc"]),
                                          hyperparameters={**FAST, "n_epochs": 1}))
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    assert job.hyperparams["max_length"] == 128
