"""Majority-class and TF-IDF + logistic regression baselines."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from tunelab.errors import InvalidInputError
from tunelab.evaluation.baselines import majority_baseline, run_baselines, tfidf_baseline, tfidf_pipeline

LABELS = [" 1", " 2", " 3"]
WORDS = {" 1": "awful terrible bad", " 2": "okay fine so so", " 3": "great love perfect"}


def _rows(n, offset=0):
    prompts, gold = [], []
    for i in range(n):
        label = LABELS[(i + offset) % 3]
        words = WORDS[label].split()
        prompts.append(" ".join(words[(i + j) % len(words)] for j in range(3)) + "\n\n###\n\n")
        gold.append(label)
    return prompts, gold


def test_majority_predicts_the_most_frequent_training_label():
    b = majority_baseline([" 2", " 3", " 3", " 1"], 4, LABELS)
    assert b.pred == [" 3"] * 4
    assert b.probs.shape == (4, 3)
    np.testing.assert_allclose(b.probs[0], [0.25, 0.25, 0.5])


def test_majority_tie_goes_to_the_first_label():
    assert majority_baseline([" 3", " 1"], 1, LABELS).pred == [" 1"]


def test_pipeline_is_tfidf_1_2_grams_sublinear_plus_logistic_regression():
    pipe = tfidf_pipeline()
    tfidf, clf = pipe.named_steps["tfidf"], pipe.named_steps["clf"]
    assert isinstance(tfidf, TfidfVectorizer) and isinstance(clf, LogisticRegression)
    assert tfidf.ngram_range == (1, 2) and tfidf.sublinear_tf is True


def test_tfidf_learns_separable_words():
    train_p, train_g = _rows(30)
    test_p, test_g = _rows(9, offset=1)
    b = tfidf_baseline(train_p, train_g, test_p, LABELS)
    assert b.pred == test_g
    np.testing.assert_allclose(b.probs.sum(axis=1), 1.0)


def test_tfidf_with_a_single_training_class():
    b = tfidf_baseline(["a b", "c d"], [" 2", " 2"], ["x"], LABELS)
    assert b.pred == [" 2"]
    assert b.probs.tolist() == [[0.0, 1.0, 0.0]]


def test_tfidf_empty_vocabulary_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="TF-IDF"):
        tfidf_baseline(["!", "?"], [" 1", " 2"], ["x"], LABELS)


def test_run_baselines_reports_headline_metrics():
    train_p, train_g = _rows(30)
    test_p, test_g = _rows(9, offset=1)
    out = run_baselines(train_p, train_g, test_p, test_g, LABELS)
    assert set(out) == {"majority", "tfidf"}
    assert out["tfidf"]["accuracy"] == 1.0
    assert out["majority"]["accuracy"] == pytest.approx(3 / 9)
    for name in out:
        for key in ("accuracy", "macro_f1", "good_vs_bad_accuracy", "one_off_accuracy", "mae", "ece"):
            assert key in out[name]
        assert out[name]["n_train"] == 30


def test_run_baselines_categorical_labels_have_no_ordinal_entries():
    labels = ["neg", "pos"]
    out = run_baselines(["bad", "awful", "great", "love"], ["neg", "neg", "pos", "pos"], ["bad", "love"],
                        ["neg", "pos"], labels)
    assert "good_vs_bad_accuracy" not in out["tfidf"]
    assert out["majority"]["label"] == "neg"


def test_run_baselines_rejects_unknown_training_labels():
    with pytest.raises(InvalidInputError, match="outside"):
        run_baselines(["a", "b"], [" 1", " 9"], ["a"], [" 1"], LABELS)
