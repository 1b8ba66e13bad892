"""classification_report against scikit-learn and hand-written definitions, on a fixture with known
predictions (tests/fixtures/eval_known_predictions.jsonl: gold, pred and label probabilities)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score, cohen_kappa_score, confusion_matrix, f1_score, mean_absolute_error,
    precision_recall_fscore_support,
)

from tests.conftest import FIXTURES
from tunelab.evaluation.metrics import (
    bootstrap_ci, calibration, classification_report, gold_logprob_summary,
)

LABELS = [" 1", " 2", " 3", " 4", " 5"]


@pytest.fixture(scope="module")
def known():
    rows = [json.loads(line) for line in (FIXTURES / "eval_known_predictions.jsonl").read_text().splitlines()]
    gold = [r["gold"] for r in rows]
    pred = [r["pred"] for r in rows]
    probs = np.array([[r["probs"][l] for l in LABELS] for r in rows])
    return gold, pred, probs


@pytest.fixture(scope="module")
def report(known):
    gold, pred, probs = known
    return classification_report(gold, pred, probs, LABELS, threshold=3)


def _ece_reference(gold, probs, n_bins=15):
    """Independent ECE: loops over equal-width bins (lo, hi] of the renormalised top-label confidence."""
    p = probs / probs.sum(axis=1, keepdims=True)
    conf, top = p.max(axis=1), p.argmax(axis=1)
    gold_idx = np.array([LABELS.index(g) for g in gold])
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        members = [i for i in range(len(conf)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if members:
            acc = np.mean([top[i] == gold_idx[i] for i in members])
            total += len(members) / len(conf) * abs(acc - conf[members].mean())
    return total


def test_fixture_predictions_are_the_argmax(known):
    gold, pred, probs = known
    assert [LABELS[i] for i in probs.argmax(axis=1)] == pred
    assert len(set(gold)) == 5 and len(set(pred)) == 5  # every class occurs, so nothing is degenerate


def test_accuracy_and_f1_match_sklearn(known, report):
    gold, pred, _ = known
    assert report["n"] == len(gold)
    assert report["labels"] == LABELS
    assert report["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert report["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert report["weighted_f1"] == pytest.approx(f1_score(gold, pred, average="weighted"))


def test_per_class_and_confusion_matrix_match_sklearn(known, report):
    gold, pred, _ = known
    prec, rec, f1, support = precision_recall_fscore_support(gold, pred, labels=LABELS, zero_division=0)
    assert list(report["per_class"]) == LABELS
    for i, label in enumerate(LABELS):
        entry = report["per_class"][label]
        assert entry["precision"] == pytest.approx(prec[i])
        assert entry["recall"] == pytest.approx(rec[i])
        assert entry["f1"] == pytest.approx(f1[i])
        assert entry["support"] == support[i]
    assert report["confusion_matrix"] == confusion_matrix(gold, pred, labels=LABELS).tolist()
    # rows are the truth
    assert [sum(r) for r in report["confusion_matrix"]] == [gold.count(l) for l in LABELS]


def test_ordinal_metrics_match_their_definitions(known, report):
    gold, pred, _ = known
    g = np.array([int(x) for x in gold])
    p = np.array([int(x) for x in pred])
    assert report["ordinal"] is True
    assert report["threshold"] == 3
    # good vs bad: prediction and truth both <= 3, or both > 3
    both = [(a <= 3 and b <= 3) or (a > 3 and b > 3) for a, b in zip(g, p)]
    assert report["good_vs_bad_accuracy"] == pytest.approx(np.mean(both))
    assert report["one_off_accuracy"] == pytest.approx(np.mean([abs(a - b) <= 1 for a, b in zip(g, p)]))
    assert report["mae"] == pytest.approx(mean_absolute_error(g, p))
    assert report["qwk"] == pytest.approx(cohen_kappa_score(g, p, weights="quadratic"))


def test_ece_matches_an_independent_implementation(known, report):
    gold, _, probs = known
    assert report["ece"] == pytest.approx(_ece_reference(gold, probs), abs=1e-12)
    cal = report["calibration"]
    assert cal["n_bins"] == 15 and len(cal["bins"]) == 15
    assert sum(b["count"] for b in cal["bins"]) == len(gold)


def test_ece_renormalises_over_the_labels(known):
    gold, pred, probs = known
    scaled = probs * 0.01  # an lm model's label probabilities can sum to far less than 1
    a = classification_report(gold, pred, probs, LABELS)["ece"]
    b = classification_report(gold, pred, scaled, LABELS)["ece"]
    assert a == pytest.approx(b)


def test_bootstrap_interval_is_seeded_and_brackets_the_accuracy(known, report):
    gold, pred, _ = known
    lo, hi = report["accuracy_ci95"]
    assert lo <= report["accuracy"] <= hi
    assert 0 < hi - lo < 0.5
    correct = np.array(gold) == np.array(pred)
    assert bootstrap_ci(correct) == report["accuracy_ci95"]  # same seed, same numbers
    # reference: 1000 resamples with numpy's default_rng(0), percentile interval
    idx = np.random.default_rng(0).integers(0, len(correct), size=(1000, len(correct)))
    means = correct[idx].mean(axis=1)
    assert [lo, hi] == pytest.approx(list(np.quantile(means, [0.025, 0.975])))


def test_hand_computed_example():
    gold = ["1", "2", "3", "4", "5", "5"]
    pred = ["1", "3", "3", "5", "2", "5"]
    r = classification_report(gold, pred, None, ["1", "2", "3", "4", "5"])
    assert r["accuracy"] == pytest.approx(3 / 6)
    assert r["good_vs_bad_accuracy"] == pytest.approx(5 / 6)  # only (5 -> 2) crosses the cut
    assert r["one_off_accuracy"] == pytest.approx(5 / 6)  # only (5 -> 2) is more than one off
    assert r["mae"] == pytest.approx(5 / 6)
    assert r["ece"] is None and r["calibration"] is None


def test_threshold_is_configurable():
    gold = ["1", "2", "3", "4", "5"]
    pred = ["2", "3", "4", "5", "4"]
    assert classification_report(gold, pred, None, gold, threshold=3)["good_vs_bad_accuracy"] == pytest.approx(4 / 5)
    assert classification_report(gold, pred, None, gold, threshold=2)["good_vs_bad_accuracy"] == pytest.approx(4 / 5)
    assert classification_report(gold, pred, None, gold, threshold=1)["good_vs_bad_accuracy"] == pytest.approx(4 / 5)
    assert classification_report(gold, pred, None, gold, threshold=4)["good_vs_bad_accuracy"] == pytest.approx(3 / 5)


def test_categorical_labels_have_no_ordinal_metrics():
    gold = ["Dresses", "Tops", "Tops", "Jeans"]
    pred = ["Dresses", "Jeans", "Tops", "Jeans"]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.1, 0.6, 0.3]])
    labels = ["Dresses", "Jeans", "Tops"]
    r = classification_report(gold, pred, probs, labels)
    assert r["ordinal"] is False
    for key in ("good_vs_bad_accuracy", "one_off_accuracy", "mae", "qwk", "threshold"):
        assert r[key] is None
    assert r["accuracy"] == pytest.approx(0.75)
    assert r["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=labels, average="macro"))
    json.dumps(r)  # valid JSON throughout


def test_absent_class_and_constant_predictions_stay_json_safe():
    gold = ["1", "1", "1"]
    pred = ["1", "1", "1"]
    r = classification_report(gold, pred, np.eye(3)[[0, 0, 0]], ["1", "2", "3"])
    assert r["accuracy"] == 1.0
    assert r["qwk"] is None  # undefined (NaN in sklearn) becomes None
    assert r["per_class"]["2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["ece"] == pytest.approx(0.0)
    text = json.dumps(r, allow_nan=False)
    assert "NaN" not in text


def test_calibration_of_a_perfectly_confident_correct_model():
    cal = calibration([0, 1, 1], np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    assert cal["ece"] == pytest.approx(0.0)
    assert cal["bins"][-1]["count"] == 3  # confidence 1.0 lands in the last bin (14/15, 1]


def test_calibration_hand_example():
    # two rows, confidences 0.9 (correct) and 0.6 (wrong): ECE = 0.5*|1-0.9| + 0.5*|0-0.6| = 0.35
    cal = calibration([0, 1], np.array([[0.9, 0.1], [0.6, 0.4]]))
    assert cal["ece"] == pytest.approx(0.35)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        classification_report(["1"], ["1", "2"])
    with pytest.raises(ValueError):
        classification_report([], [])
    with pytest.raises(ValueError):
        classification_report(["1", "9"], ["1", "1"], labels=["1", "2"])
    with pytest.raises(ValueError):
        classification_report(["1", "2"], ["1", "1"], np.ones((2, 3)), ["1", "2"])


def test_gold_logprob_summary():
    s = gold_logprob_summary([-0.5, -1.5], [1, 3])
    assert s["mean_logprob"] == pytest.approx(-1.0)
    assert s["perplexity"] == pytest.approx(math.exp(2.0 / 4))
