"""Logit adjustment (tunelab.inference.adjustment): the correction itself, tau tuned for macro-F1,
and the Predictor applying the stored tau to every distribution it reports."""

from __future__ import annotations

import numpy as np

from tunelab.inference.adjustment import adjust, class_prior, fit_tau


def test_adjust_moves_mass_to_rare_classes_and_tau_zero_is_identity():
    prior = [0.9, 0.1]
    logp = np.log([[0.6, 0.4], [0.95, 0.05]])
    assert np.array_equal(adjust(logp, prior, 0.0), logp) and np.array_equal(adjust(logp, None, 1.0), logp)
    adjusted = np.exp(adjust(logp, prior, 1.0))
    assert np.allclose(adjusted.sum(axis=1), 1.0)
    # p / prior renormalised: 0.6/0.9 vs 0.4/0.1 -> the rare class wins the first row.
    assert np.allclose(adjusted[0], np.array([0.6 / 0.9, 0.4 / 0.1]) / (0.6 / 0.9 + 0.4 / 0.1))
    assert adjusted[0].argmax() == 1 and adjusted[1].argmax() == 0


def test_fit_tau_finds_the_correction_an_imbalanced_model_needs():
    rng = np.random.default_rng(0)
    gold = np.array([0] * 900 + [1] * 100)
    prior = class_prior(gold, 2)
    assert np.allclose(prior, [0.9, 0.1])
    # A model that carries the prior: rare-class rows get evidence 3:1, diluted by the 9:1 prior.
    evidence = np.where(gold[:, None] == np.arange(2)[None, :], 3.0, 1.0) * rng.uniform(0.8, 1.2, (1000, 2))
    probs = evidence * np.array(prior)[None, :]
    logp = np.log(probs / probs.sum(axis=1, keepdims=True))
    tau, tuned, before = fit_tau(logp, gold, prior)
    assert tau > 0.5 and tuned > before
    balanced = fit_tau(np.log(np.full((10, 2), 0.5)), np.array([0, 1] * 5), [0.5, 0.5])
    assert balanced[0] == 0.0  # nothing to correct: the smallest tau wins the tie


def test_predictor_applies_the_stored_adjustment(tiny_models, tunelab_home):
    from tunelab.inference.calibration import apply_temperature
    from tunelab.inference.predictor import load_predictor
    from tunelab.store import Store

    store = Store()
    model_id = tiny_models.register(store, "classifier")
    predictor = load_predictor(model_id, store)
    prompts = ["great good love\n\n###\n\n", "bad awful\n\n###\n\n"]
    raw = predictor.score_labels(prompts, calibrated=False)
    assert predictor.logit_adjustment == 0.0 and np.allclose(predictor.score_labels(prompts), raw)
    predictor.meta.class_prior = [0.6, 0.1, 0.1, 0.1, 0.1]
    predictor.meta.logit_adjustment = 1.0
    predictor.meta.temperature = 2.0
    expected = adjust(apply_temperature(raw, 2.0), predictor.meta.class_prior, 1.0)
    assert np.allclose(predictor.score_labels(prompts), expected)
    answer = predictor.complete(prompts[:1], temperature=0, logprobs=5)[0][0]
    assert answer.text == predictor.labels[int(expected[0].argmax())]
    assert np.allclose(sorted(answer.top_logprobs[0].values()), sorted(expected[0]))
