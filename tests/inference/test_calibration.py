"""Temperature scaling: fitted on over-confident scores it is > 1 and lowers the ECE; stored with a
model, the Predictor (and so evaluate, complete and the server) applies it: probabilities are
softmax(logits / T)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax

from tunelab.evaluation.metrics import calibration
from tunelab.inference.calibration import apply_temperature, fit_temperature, nll


def overconfident(n: int = 4000, k: int = 5, seed: int = 0, sharpen: float = 3.0):
    """Logits whose softmax is calibrated, multiplied by `sharpen`: the model is right as often as
    before but sure of itself `sharpen` times too much."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 1.5
    gold = np.array([rng.choice(k, p=p) for p in softmax(logits, axis=1)])
    return log_softmax(logits * sharpen, axis=1), gold


def test_fitted_temperature_undoes_over_confidence_and_lowers_the_ece():
    logp, gold = overconfident()
    t = fit_temperature(logp, gold)
    assert t > 1 and t == pytest.approx(3.0, rel=0.15)
    before = calibration(gold, np.exp(logp))["ece"]
    after = calibration(gold, np.exp(apply_temperature(logp, t)))["ece"]
    assert after < before / 3 and after < 0.03
    assert nll(logp, gold, t) < nll(logp, gold)
    # the most probable label never changes, so accuracy does not either
    assert (apply_temperature(logp, t).argmax(1) == logp.argmax(1)).all()


def test_a_temperature_that_a_small_file_cannot_support_stays_one():
    logp, gold = overconfident(n=4000, sharpen=1.0)  # calibrated already
    assert fit_temperature(logp[:60], gold[:60]) == 1.0
    assert fit_temperature(logp[:60], gold[:60], significance=None) != 1.0  # the raw minimiser is noise
    over, gold2 = overconfident(n=60, sharpen=3.0, seed=1)
    assert fit_temperature(over, gold2) > 1.5  # a large effect shows even on 60 rows


def test_under_confident_scores_get_a_temperature_below_one():
    logp, gold = overconfident(sharpen=0.4)
    assert fit_temperature(logp, gold) < 1


def test_temperature_one_is_the_identity_and_rows_stay_distributions():
    logp, _ = overconfident(n=10)
    assert apply_temperature(logp, 1.0) is not None and np.allclose(apply_temperature(logp, 1.0), logp)
    scaled = apply_temperature(logp, 2.5)
    assert np.allclose(np.exp(scaled).sum(1), 1.0)


def _with_temperature(tiny_models, store, temperature: float) -> str:
    """A registered tiny classifier whose tunelab.json and models row carry `temperature`."""
    from tunelab.models.loading import read_meta

    model_id = tiny_models.register(store, "classifier")
    record = store.find_model(model_id)
    meta_path = f"{record.path}/tunelab.json"
    meta = json.load(open(meta_path))
    meta["temperature"] = temperature
    json.dump(meta, open(meta_path, "w"))
    assert read_meta(record.path).temperature == temperature
    return model_id


def _raw_logits(folder, prompts):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        return np.stack([model(**tok(p, return_tensors="pt")).logits[0].numpy() for p in prompts])


PROMPTS = ["great good love perfect\n\n###\n\n", "awful terrible poor quality\n\n###\n\n"]


def test_predictor_applies_the_stored_temperature(tiny_models, tunelab_home):
    from tunelab.inference.predictor import load_predictor
    from tunelab.store import Store

    store = Store()
    model_id = _with_temperature(tiny_models, store, 2.5)
    predictor = load_predictor(model_id, store)
    assert predictor.temperature == 2.5
    expected = softmax(_raw_logits(store.find_model(model_id).path, PROMPTS) / 2.5, axis=1)
    got = np.exp(predictor.score_labels(PROMPTS, batch_size=1))
    assert np.allclose(got, expected, atol=2e-2)  # bf16 autocast where the CPU has it
    raw = np.exp(predictor.score_labels(PROMPTS, batch_size=1, calibrated=False))
    assert not np.allclose(raw, got, atol=1e-3)
    # complete's label probabilities are the same calibrated numbers
    choice = predictor.complete(PROMPTS[:1], max_tokens=1, temperature=0, logprobs=5)[0][0]
    top = {label: np.exp(lp) for label, lp in choice.top_logprobs[0].items()}
    assert np.allclose([top[l] for l in predictor.labels], got[0], atol=1e-6)


def test_labels_score_route_returns_calibrated_probabilities(tiny_models, tunelab_home):
    from fastapi.testclient import TestClient

    from tunelab.server import create_app
    from tunelab.store import Store

    store = Store()
    model_id = _with_temperature(tiny_models, store, 3.0)
    app = create_app(store, isolate_models=False)
    with TestClient(app) as http:
        response = http.post("/v1/labels/score", json={"model": model_id, "prompt": PROMPTS})
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    labels = response.json()["labels"]
    expected = softmax(_raw_logits(store.find_model(model_id).path, PROMPTS) / 3.0, axis=1)
    got = np.array([[np.exp(r["logprobs"][l]) for l in labels] for r in rows])
    assert np.allclose(got, expected, atol=2e-2)


def test_evaluate_reports_ece_before_and_after(tiny_models, tunelab_home):
    from tunelab.evaluation.report import evaluate_model
    from tunelab.store import Store

    store = Store()
    model_id = _with_temperature(tiny_models, store, 2.0)
    report = evaluate_model(model_id, tiny_models.valid, store=store, progress=False)
    assert report["temperature"] == 2.0
    assert report["ece"] is not None and report["ece_uncalibrated"] is not None
    assert report["ece"] != report["ece_uncalibrated"]
    assert set(report["decision_rules"]) == {"argmax", "median", "good_vs_bad"}
