"""Both methods on both packaged models, on a few dozen real reviews (the real weights, offline)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunelab.data.builder import build_dataset
from tunelab.inference.predictor import load_predictor
from tunelab.store import Store
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("reviews")
    result = build_dataset("clothing-reviews", out_dir=out, train_size=40, val_size=15, test_size=10, seed=1)
    return result.paths


@pytest.mark.parametrize("model,method,hp", [
    ("ada", "classifier", {}),
    ("smollm2-135m", "classifier", {"batch_size": 8}),
    ("smollm2-135m", "lm", {"batch_size": 8, "lora": True}),
])
def test_packaged_model_trains_and_answers(reviews, model, method, hp):
    store = Store()
    job, notices = create_job(store, JobRequest(
        str(reviews["train"]), model, str(reviews["valid"]), {"n_epochs": 1, "method": method, **hp},
        ClassificationOptions(True, 5)))
    if model == "ada":
        assert "maps to the local model minilm-l6" in notices[0]
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith(f"{model}:ft-personal-")
    record = store.get_model(job.fine_tuned_model)
    assert any(Path(record.path).glob("*.safetensors"))
    predictor = load_predictor(record.id, store)
    prompt = open(reviews["test"]).readline()
    import json

    prompt = json.loads(prompt)["prompt"]
    scores = predictor.score_labels([prompt])
    assert scores.shape == (1, 5)
    import numpy as np

    assert np.exp(scores).sum() <= 1.0 + 1e-6
    choice = predictor.complete([prompt], max_tokens=1, temperature=0, logprobs=5)[0][0]
    assert choice.text in record.labels and len(choice.top_logprobs[0]) == 5
