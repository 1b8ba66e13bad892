"""A model trained on chat data through its chat template is monitored on its prompts as it reads
them: the reference renders the training rows with the template, as `evaluate` and the server do."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.tiny_models import write_chat_jsonl
from tunelab.evaluation import evaluate_model
from tunelab.monitoring.reference import load_reference, model_data
from tunelab.store import Store
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)


def test_reference_of_a_chat_template_model(tiny_models, tmp_path):
    store = Store()
    train = write_chat_jsonl(tmp_path / "train.jsonl", 30)
    create_job(store, JobRequest(str(train), str(tiny_models.decoder), hyperparameters={"n_epochs": 1, "method": "lm"}))
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    model = job.fine_tuned_model
    assert model_data(store, model).chat_format == "template"

    reference = load_reference(store, model)
    assert reference.separator == ""  # its prompts come from its template, not a separator
    assert all(t.startswith("system: rate the review\nuser: ") and t.endswith("assistant:") for t in reference.texts)
    # the same numbers as evaluate (which renders chat rows as the model learnt them)
    report = evaluate_model(model, train, store=store, progress=False, out_dir=tmp_path / "report")
    predictions = [json.loads(line) for line in (tmp_path / "report" / "predictions.jsonl").read_text().splitlines()]
    top1 = [max(p["probs"].values()) / sum(p["probs"].values()) for p in predictions]  # over the labels alone
    assert sorted(reference.top1) == pytest.approx(sorted(top1), abs=1e-4)
    assert reference.accuracy == pytest.approx(report["accuracy"])
