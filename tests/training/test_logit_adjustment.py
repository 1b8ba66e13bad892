"""The logit-adjusted loss and the post-hoc tau: planned, trained, stored with the model, and
reported by `tunelab evaluate` next to the argmax decisions."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import write_classification_jsonl
from tunelab.errors import InvalidInputError
from tunelab.models.loading import load_fine_tuned
from tunelab.store import Store
from tunelab.training.config import ClassificationOptions, Hyperparameters
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job

CATEGORIES = ("dress", "shirt", "pants", "skirt")


def imbalanced(path, n, seed):
    """Mostly dresses: 4 of every 7 rows, one each of the others."""
    full = write_classification_jsonl(path.with_suffix(".all"), n * 2, seed=seed, labels=CATEGORIES)
    rows = [json.loads(line) for line in full.read_text().splitlines()]
    keep = [r for i, r in enumerate(rows) if r["completion"] == " dress" or i % 3 == 0][:n]
    path.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return path


def test_unknown_loss_and_misplaced_options_are_refused(tmp_path, tiny_models, tunelab_home):
    with pytest.raises(InvalidInputError, match="loss must be one of"):
        Hyperparameters(loss="focal")
    train = write_classification_jsonl(tmp_path / "t.jsonl", 40, labels=CATEGORIES)
    store = Store()
    with pytest.raises(InvalidInputError) as info:
        create_job(store, JobRequest(str(train), str(tiny_models.decoder), None,
                                     {"method": "lm", "loss": "logit_adjusted", "logit_adjustment": True}))
    assert "loss logit_adjusted needs the classifier method" in info.value.render()
    assert "logit_adjustment tunes its strength on a validation file" in info.value.render()


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_trained_model_stores_prior_and_tau_and_evaluate_shows_both(tmp_path, tiny_models, tunelab_home, capsys):
    train = imbalanced(tmp_path / "train.jsonl", 70, 0)
    valid = imbalanced(tmp_path / "valid.jsonl", 30, 1)
    test = imbalanced(tmp_path / "test.jsonl", 30, 2)
    store = Store()
    create_job(store, JobRequest(str(train), str(tiny_models.encoder), str(valid),
                                 {"n_epochs": 1, "learning_rate_multiplier": 50, "eval_every": 1000,
                                  "loss": "logit_adjusted", "logit_adjustment": True},
                                 ClassificationOptions(True, 4)))
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    record = store.find_model(job.fine_tuned_model)
    meta = load_fine_tuned(record.path)[2]
    rows = [json.loads(line)["completion"] for line in train.read_text().splitlines()]
    assert meta.loss == "logit_adjusted"
    assert meta.class_prior == pytest.approx([rows.count(label) / len(rows) for label in meta.labels])
    assert meta.logit_adjustment >= 0.0 and record.meta["logit_adjustment"] == meta.logit_adjustment
    events = [e.message for e in store.list_events(job.id)]
    assert any(m.startswith("Logit adjustment: tau") for m in events)
    # the last temperature reported is the one stored: refitted after a kept tau
    calibrated = [e.data for e in store.list_events(job.id) if e.message.startswith("Calibrated probabilities")]
    assert calibrated[-1]["temperature"] == meta.temperature == record.meta["temperature"]

    assert run_cli("evaluate", "-m", record.id, "-f", test, "--out", tmp_path / "report", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    side = report["logit_adjustment"]
    assert side["tau"] == meta.logit_adjustment and set(side) >= {"argmax", "adjusted"}
    assert set(side["argmax"]) == {"accuracy", "macro_f1", "balanced_accuracy", "top3_accuracy", "rare_class_recall_mean"}
    assert report["balanced_accuracy"] is not None and report["top3_accuracy"] is not None
    assert list(report["rare_class_recall"]) == sorted(meta.labels, key=lambda l: meta.class_prior[meta.labels.index(l)])
    assert run_cli("evaluate", "-m", record.id, "-f", test, "--out", tmp_path / "report") == 0
    out = capsys.readouterr().out
    assert "Logit adjustment (tau" in out and "balanced accuracy" in out and "top-3 accuracy" in out
    assert run_cli("compare", record.id, "-f", test, "--train", train, "--out", tmp_path / "cmp") == 0
    out = capsys.readouterr().out
    assert "balanced accuracy" in out and f"recall of all {len(CATEGORIES)} classes (mean)" in out  # not "10 rarest"
    assert "macro F1 (argmax)" in out and "macro F1 (logit-adjusted)" in out
    assert "good-vs-bad" not in out and "one-off" not in out and "MAE" not in out  # no empty ordinal rows


def _imbalanced_overconfident(n: int = 6000, k: int = 8, seed: int = 0, sharpen: float = 2.0):
    """Validation log-probabilities of a model that carries a long-tailed training prior and is
    `sharpen` times too sure of itself, and their gold labels."""
    from scipy.special import log_softmax

    rng = np.random.default_rng(seed)
    prior = np.geomspace(1.0, 0.03, k)
    prior /= prior.sum()
    gold = rng.choice(k, size=n, p=prior)
    evidence = rng.normal(size=(n, k)) + 1.2 * (np.arange(k)[None, :] == gold[:, None])
    return log_softmax((evidence + np.log(prior)[None, :]) * sharpen, axis=1), gold


def test_temperature_is_refitted_after_a_kept_tau_keeping_every_decision():
    """What the Predictor reports, adjust(apply_temperature(raw, T), prior, tau), is calibrated after a
    kept tau, and the decisions tau was tuned for do not move."""
    from types import SimpleNamespace

    from tunelab.evaluation.metrics import calibration
    from tunelab.inference.adjustment import adjust, class_prior, fit_tau
    from tunelab.inference.calibration import apply_temperature, fit_temperature
    from tunelab.training.runner import _fit_adjustment

    logp, gold = _imbalanced_overconfident()
    prior = class_prior(gold, logp.shape[1])
    before = fit_temperature(logp, gold)
    tuned_tau = fit_tau(apply_temperature(logp, before), gold, prior)[0]
    events = []
    store = SimpleNamespace(add_event=lambda job_id, message, data=None: events.append((message, data)))
    selector = SimpleNamespace(score=lambda model: logp, gold_idx=gold, calibrate=True)
    tau, temperature = _fit_adjustment(store, SimpleNamespace(id="ftjob-1"), selector, None, before, prior)

    reported_before = adjust(apply_temperature(logp, before), prior, tuned_tau)
    reported = adjust(apply_temperature(logp, temperature), prior, tau)
    assert tuned_tau > 0 and temperature != pytest.approx(before, rel=0.05)
    assert (reported.argmax(1) == reported_before.argmax(1)).all()
    ece_before = calibration(gold, np.exp(reported_before))["ece"]
    ece_after = calibration(gold, np.exp(reported))["ece"]
    assert ece_after < ece_before / 2, (ece_before, ece_after)
    assert -reported[np.arange(len(gold)), gold].mean() < -reported_before[np.arange(len(gold)), gold].mean()
    message, data = events[-1]
    assert message.startswith(f"Calibrated probabilities: temperature {temperature:.3f} refitted on the adjusted scores")
    assert f"the same adjustment is tau {tau:.2f} (= {tuned_tau:.1f} x {before:.3f} / {temperature:.3f})" in message
    assert data == {"temperature": temperature, "temperature_before_adjustment": before, "logit_adjustment": tau}

    # without calibration the temperature stays 1 and tau is the tuned one
    events.clear()
    selector.calibrate = False
    tau, temperature = _fit_adjustment(store, SimpleNamespace(id="ftjob-1"), selector, None, 1.0, prior)
    assert temperature == 1.0 and tau == fit_tau(logp, gold, prior)[0]
    assert len(events) == 1 and events[0][0].startswith("Logit adjustment: tau")


@pytest.mark.slow  # trains two tiny models
def test_a_continuation_on_some_labels_keeps_the_lineage_prior_and_says_what_it_drops(tmp_path, tiny_models,
                                                                                      tunelab_home):
    """Feedback corrections cover a few labels: a continued model keeps its parent's prior (a share of
    0 for a missing label made the post-hoc adjustment boost it), and continuing without -v says that
    the parent's tau and temperature cannot be refitted."""
    train = imbalanced(tmp_path / "train.jsonl", 70, 0)
    valid = imbalanced(tmp_path / "valid.jsonl", 30, 1)
    store = Store()
    create_job(store, JobRequest(str(train), str(tiny_models.encoder), str(valid),
                                 {"n_epochs": 1, "learning_rate_multiplier": 50, "eval_every": 1000,
                                  "logit_adjustment": True}, ClassificationOptions(True, 4)))
    parent = run_job(store, store.claim_next_job(os.getpid()))
    assert parent.status == "succeeded", parent.error
    parent_meta = load_fine_tuned(store.find_model(parent.fine_tuned_model).path)[2]

    rows = [json.loads(line) for line in train.read_text().splitlines()]
    some = tmp_path / "feedback.jsonl"
    some.write_text("".join(json.dumps(r) + "\n" for r in rows if r["completion"] in (" shirt", " pants")))
    create_job(store, JobRequest(str(some), parent.fine_tuned_model, str(valid),
                                 {"n_epochs": 1, "eval_every": 1000, "logit_adjustment": True}))
    child = run_job(store, store.claim_next_job(os.getpid()))
    assert child.status == "succeeded", child.error
    child_meta = load_fine_tuned(store.find_model(child.fine_tuned_model).path)[2]
    assert child_meta.labels == parent_meta.labels
    assert child_meta.class_prior == pytest.approx(parent_meta.class_prior)

    _, notices = create_job(store, JobRequest(str(some), parent.fine_tuned_model, None, {"n_epochs": 1}))
    dropped = [n for n in notices if "without a validation file" in n]
    if parent_meta.logit_adjustment or parent_meta.temperature != 1.0:
        assert len(dropped) == 1 and f"-v {parent.validation_file}" in dropped[0], notices
    else:
        assert not dropped
