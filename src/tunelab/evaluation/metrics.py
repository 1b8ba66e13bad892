"""Classification metrics as pure functions over gold/predicted label lists and probability matrices.

Definitions (chapter 4.6.1, Table 4.1):

- accuracy: exact match, with a seeded bootstrap 95 % interval (1000 resamples, percentile method);
- ordinal labels (every label is an integer, e.g. 1-5 stars; the rules are in tunelab.data.labels)
  also get
  - good-vs-bad accuracy: prediction and truth on the same side of `threshold`
    (both <= threshold, or both > threshold; 3 for 1-5 stars),
  - one-off accuracy: |pred - true| <= 1,
  - MAE: mean |pred - true|,
  - QWK: quadratic weighted Cohen's kappa (scikit-learn);
- macro / weighted F1, per-class precision/recall/F1/support and the confusion matrix (scikit-learn),
  always over `labels` in their given order (rows of the confusion matrix are the truth);
- ECE: expected calibration error over 15 equal-width bins of the top-label confidence, with each
  row of probabilities renormalised over the labels first (an lm model's label probabilities sum to
  less than 1, as the rest of the vocabulary keeps some mass).

Values that are undefined (QWK when only one class occurs, ordinal metrics of non-ordinal labels)
are None, so the result is valid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tunelab.data.labels import default_threshold, good_vs_bad, ordinal_values

ECE_BINS = 15
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def bootstrap_ci(correct: Sequence[bool] | np.ndarray, *, n_resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean of a 0/1 vector: resample rows with replacement."""
    values = np.asarray(correct, dtype=np.float64)
    n = len(values)
    if n == 0:
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    means = values[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def normalise_probs(probs) -> np.ndarray:
    """Rows renormalised to sum to 1 over the labels (rows of zeros become uniform)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    sums = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / max(1, p.shape[1]))
    return np.where(sums > 0, p / np.where(sums > 0, sums, 1.0), uniform)


def calibration(gold_idx: Sequence[int], probs, *, n_bins: int = ECE_BINS) -> dict:
    """ECE and reliability-diagram bins. Correctness is whether the top-probability label is the
    gold one; confidence is that label's renormalised probability. Bin b covers
    (b/n_bins, (b+1)/n_bins], with a confidence of exactly 0 in the first bin."""
    p = normalise_probs(probs)
    gold_idx = np.asarray(gold_idx, dtype=np.int64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == gold_idx).astype(np.float64)
    n = len(conf)
    which = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        entry = {"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": count,
                 "confidence": None, "accuracy": None}
        if count:
            c, a = float(conf[mask].mean()), float(correct[mask].mean())
            entry.update(confidence=c, accuracy=a)
            ece += count / n * abs(a - c)
        bins.append(entry)
    return {"ece": float(ece) if n else None, "n_bins": n_bins, "bins": bins}


def classification_report(gold: Sequence[str], pred: Sequence[str], probs=None,
                          labels: Sequence[str] | None = None, threshold: int | float | None = 3,
                          class_counts: Sequence[float] | None = None) -> dict:
    """Every metric of `tunelab evaluate` that depends only on labels and probabilities.

    gold, pred: label strings, one per row. probs: optional [n, len(labels)] probabilities (not
    logs) in `labels` order; without it the calibration entries are None. labels: the label set
    and its order (default: sorted union of gold and pred). threshold: the good-vs-bad cut for
    ordinal labels (None picks `default_threshold`). class_counts: how common each label is (the
    training prior, in `labels` order) to pick the rarest classes; default the test support.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    gold = [str(g) for g in gold]
    pred = [str(p) for p in pred]
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} rows but pred has {len(pred)}")
    if not gold:
        raise ValueError("no rows to evaluate")
    labels = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    unknown = sorted((set(gold) | set(pred)) - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label list {labels}")
    n = len(gold)
    g, p = np.array(gold, dtype=object), np.array(pred, dtype=object)
    correct = g == p

    report: dict = {
        "n": n,
        "labels": labels,
        "accuracy": float(correct.mean()),
        "accuracy_ci95": bootstrap_ci(correct),
    }

    values = ordinal_values(labels)
    report["ordinal"] = values is not None
    if values is not None:
        if threshold is None:
            threshold = default_threshold(labels)
        as_int = dict(zip(labels, values))
        gi = np.array([as_int[x] for x in gold])
        pi = np.array([as_int[x] for x in pred])
        diff = np.abs(gi - pi)
        good = good_vs_bad(labels, threshold)
        same_side = np.array([good[t] == good[q] for t, q in zip(gold, pred)])
        report.update(
            threshold=threshold,
            good_vs_bad_accuracy=float(same_side.mean()),
            one_off_accuracy=float((diff <= 1).mean()),
            mae=float(diff.mean()),
            qwk=_qwk(gi, pi, sorted(set(values))),
        )
    else:
        report.update(threshold=None, good_vs_bad_accuracy=None, one_off_accuracy=None, mae=None, qwk=None)

    report["macro_f1"] = float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0))
    report["weighted_f1"] = float(f1_score(gold, pred, labels=labels, average="weighted", zero_division=0))
    prec, rec, f1, support = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    report["per_class"] = {
        label: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, label in enumerate(labels)
    }
    report["confusion_matrix"] = confusion_matrix(gold, pred, labels=labels).tolist()
    report.update(imbalance_metrics(report["per_class"], labels, class_counts))

    if probs is not None:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (n, len(labels)):
            raise ValueError(f"probs has shape {probs.shape}; expected ({n}, {len(labels)})")
        index = {label: i for i, label in enumerate(labels)}
        cal = calibration([index[x] for x in gold], probs)
        report["ece"] = cal["ece"]
        report["calibration"] = cal
        report["top3_accuracy"] = top_k_accuracy([index[x] for x in gold], probs, 3)
    else:
        report["ece"] = None
        report["calibration"] = None
        report["top3_accuracy"] = None
    return report


RARE_CLASSES = 10
"""`rare_class_recall` covers this many of the rarest classes."""


def imbalance_metrics(per_class: dict, labels: Sequence[str], class_counts: Sequence[float] | None = None) -> dict:
    """balanced_accuracy: the mean recall over the classes present in the test rows (scikit-learn's
    definition); rare_class_recall: {label: recall} of the RARE_CLASSES rarest classes (by
    `class_counts`, else by test support) that occur in the test rows, and their mean."""
    present = [l for l in labels if per_class[l]["support"] > 0]
    commonness = dict(zip(labels, class_counts)) if class_counts is not None else {l: per_class[l]["support"] for l in labels}
    rarest = sorted(present, key=lambda l: (commonness[l], labels.index(l)))[:RARE_CLASSES]
    recall = {l: per_class[l]["recall"] for l in rarest}
    return {"balanced_accuracy": float(np.mean([per_class[l]["recall"] for l in present])) if present else None,
            "rare_class_recall": recall,
            "rare_class_recall_mean": float(np.mean(list(recall.values()))) if recall else None}


def top_k_accuracy(gold_idx: Sequence[int], probs, k: int = 3) -> float | None:
    """Share of rows whose gold label is among the k most probable (None with k or fewer labels,
    where it is always 1)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] <= k or len(p) == 0:
        return None
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(gold_idx)[:, None]).any(axis=1).mean())


def gold_logprob_summary(gold_logprobs: Sequence[float], gold_token_counts: Sequence[int]) -> dict:
    """Mean natural-log probability of the gold completion, and perplexity per gold completion
    token: exp(-(sum of gold log-probs) / (sum of gold completion tokens))."""
    lp = np.asarray(gold_logprobs, dtype=np.float64)
    tokens = np.asarray(gold_token_counts, dtype=np.float64)
    if len(lp) == 0:
        return {"mean_logprob": None, "perplexity": None}
    total_tokens = max(1.0, float(tokens.sum()))
    per_token = float(lp.sum()) / total_tokens
    return {"mean_logprob": float(lp.mean()),
            "mean_logprob_per_token": per_token,
            "perplexity": _finite(math.exp(min(-per_token, 700.0)))}


def summary_subset(report: dict) -> dict:
    """The headline metrics (what a baseline column shows)."""
    keys = ("accuracy", "accuracy_ci95", "macro_f1", "weighted_f1", "ece", "balanced_accuracy", "top3_accuracy",
            "rare_class_recall_mean")
    out = {k: report.get(k) for k in keys}
    if report.get("ordinal"):
        for k in ("good_vs_bad_accuracy", "one_off_accuracy", "mae", "qwk"):
            out[k] = report.get(k)
    return out


def _qwk(gold: np.ndarray, pred: np.ndarray, values: list[int]) -> float | None:
    import warnings

    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():  # undefined kappa (one class only) is reported as None
        warnings.simplefilter("ignore")
        return _finite(cohen_kappa_score(gold, pred, labels=values, weights="quadratic"))


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
