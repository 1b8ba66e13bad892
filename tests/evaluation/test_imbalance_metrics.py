"""Balanced accuracy, top-3 accuracy and the recall of the rarest classes in every report."""

from __future__ import annotations

import numpy as np

from tunelab.evaluation.metrics import classification_report, top_k_accuracy


def test_balanced_accuracy_and_rare_class_recall():
    labels = ["a", "b", "c", "d"]
    gold = ["a"] * 6 + ["b"] * 2 + ["c"] + ["d"]
    pred = ["a"] * 6 + ["b", "a"] + ["a"] + ["d"]
    report = classification_report(gold, pred, None, labels)
    assert report["balanced_accuracy"] == (1 + 0.5 + 0 + 1) / 4
    assert report["rare_class_recall"] == {"c": 0.0, "d": 1.0, "b": 0.5, "a": 1.0}
    by_prior = classification_report(gold, pred, None, labels, class_counts=[0.1, 0.2, 0.3, 0.4])
    assert list(by_prior["rare_class_recall"]) == ["a", "b", "c", "d"]
    assert report["top3_accuracy"] is None


def test_top_k_accuracy():
    probs = np.array([[0.5, 0.3, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    assert top_k_accuracy([2, 0, 3], probs, 3) == 1 / 3
    assert top_k_accuracy([0], probs[:1, :3], 3) is None  # three labels: always in the top 3
    report = classification_report(["a", "a", "d"], ["a", "d", "a"], probs[[0, 1, 2]], ["a", "b", "c", "d"])
    assert report["top3_accuracy"] == 1 / 3  # row 1: "a" is the least probable; row 3: "d" is
