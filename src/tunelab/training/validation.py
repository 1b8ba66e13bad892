"""Validation rows of the results CSV: teacher-forced loss/accuracy on a fixed sample, and the
classification columns from scoring every label on the whole validation file."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from tunelab.data.labels import match_label
from tunelab.inference.scoring import score_labels


def classification_columns(model, tokenizer, method: str, prompts: list[str], gold: list[str],
                           labels: list[str], *, positive_class: str | None, betas: list[float],
                           batch_size: int, max_length: int, scores: np.ndarray | None = None) -> dict:
    """`scores`: log P(label | prompt) already computed for `prompts` (skips scoring them again)."""
    if scores is None:
        scores = score_labels(model, tokenizer, method, prompts, labels, batch_size=batch_size,
                              max_length=max_length)
    pred = [labels[i] for i in scores.argmax(1)]
    out = {"classification/accuracy": skm.accuracy_score(gold, pred)}
    if positive_class is None:
        out["classification/weighted_f1_score"] = skm.f1_score(gold, pred, average="weighted", zero_division=0)
        return out
    pos = match_label(positive_class, labels, what="positive class")
    y_true = np.array([g == pos for g in gold])
    y_pred = np.array([p == pos for p in pred])
    probs = np.exp(scores)
    p_pos = probs[:, labels.index(pos)] / probs.sum(1).clip(min=1e-12)
    out["classification/precision"] = skm.precision_score(y_true, y_pred, zero_division=0)
    out["classification/recall"] = skm.recall_score(y_true, y_pred, zero_division=0)
    both = len(set(y_true.tolist())) == 2
    out["classification/auroc"] = skm.roc_auc_score(y_true, p_pos) if both else None
    out["classification/auprc"] = skm.average_precision_score(y_true, p_pos) if both else None
    out["classification/f1.0"] = skm.f1_score(y_true, y_pred, zero_division=0)
    for beta in betas:
        if float(beta) != 1.0:
            out[f"classification/f{beta}"] = skm.fbeta_score(y_true, y_pred, beta=float(beta), zero_division=0)
    return out
