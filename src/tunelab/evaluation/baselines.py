"""Reference points a fine-tuned model must beat, trained on the same training file:

- majority: always the most frequent training label (its probabilities are the training label
  frequencies, so it also has an ECE);
- tfidf: TF-IDF (word 1-2 grams, sublinear tf) + logistic regression, one scikit-learn Pipeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tunelab.errors import InvalidInputError
from tunelab.evaluation.metrics import classification_report, summary_subset

BASELINES = ("majority", "tfidf")
TITLES = {"majority": "majority", "tfidf": "tf-idf"}


@dataclass
class BaselinePrediction:
    name: str
    pred: list[str]
    probs: np.ndarray  # [n_test, n_labels], `labels` order


def majority_baseline(train_gold: Sequence[str], n_test: int, labels: Sequence[str]) -> BaselinePrediction:
    counts = Counter(train_gold)
    if not counts:
        raise InvalidInputError("The training file has no rows for the baselines.")
    # Ties go to the label that comes first in `labels`, so the result does not depend on file order.
    order = {label: i for i, label in enumerate(labels)}
    top = min(counts, key=lambda label: (-counts[label], order.get(label, len(order)), label))
    total = sum(counts.values())
    prior = np.array([counts.get(label, 0) / total for label in labels], dtype=np.float64)
    return BaselinePrediction("majority", [top] * n_test, np.tile(prior, (n_test, 1)))


def tfidf_pipeline(seed: int = 0):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from tunelab.data.words import TOKEN_PATTERN

    return Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=TOKEN_PATTERN)),
        ("clf", LogisticRegression(max_iter=1000, random_state=seed)),
    ])


def tfidf_baseline(train_prompts: Sequence[str], train_gold: Sequence[str], test_prompts: Sequence[str],
                   labels: Sequence[str], seed: int = 0) -> BaselinePrediction:
    labels = list(labels)
    n = len(test_prompts)
    classes = sorted(set(train_gold))
    if len(classes) < 2:  # logistic regression needs two classes; one class is its own answer
        only = classes[0]
        probs = np.zeros((n, len(labels)))
        probs[:, labels.index(only)] = 1.0
        return BaselinePrediction("tfidf", [only] * n, probs)
    pipe = tfidf_pipeline(seed)
    try:
        pipe.fit(list(train_prompts), list(train_gold))
    except ValueError as exc:  # e.g. "empty vocabulary" when the prompts hold no words
        raise InvalidInputError(f"Cannot train the TF-IDF baseline on the training file: {exc}") from None
    fitted = list(pipe.classes_)
    raw = pipe.predict_proba(list(test_prompts))
    probs = np.zeros((n, len(labels)))
    for j, label in enumerate(fitted):
        probs[:, labels.index(label)] = raw[:, j]
    pred = [fitted[i] for i in raw.argmax(axis=1)]
    return BaselinePrediction("tfidf", pred, probs)


def run_baselines(train_prompts: Sequence[str], train_gold: Sequence[str], test_prompts: Sequence[str],
                  test_gold: Sequence[str], labels: Sequence[str], *, threshold=None) -> dict:
    """{name: headline metrics} for every baseline. Labels must already be mapped onto `labels`."""
    labels = list(labels)
    outside = sorted(set(train_gold) - set(labels))
    if outside:
        raise InvalidInputError(f"The training file has labels outside the evaluated label set: {outside}.")
    counts = [Counter(train_gold)[label] for label in labels]  # the rarest classes by training count, as for models
    out = {}
    for prediction in (majority_baseline(train_gold, len(test_prompts), labels),
                       tfidf_baseline(train_prompts, train_gold, test_prompts, labels)):
        report = classification_report(test_gold, prediction.pred, prediction.probs, labels, threshold=threshold,
                                       class_counts=counts)
        out[prediction.name] = {**summary_subset(report), "n_train": len(train_gold)}
        if prediction.name == "majority" and prediction.pred:
            out["majority"]["label"] = prediction.pred[0]
    return out
