"""Logit adjustment for imbalanced labels (Menon et al., "Long-tail learning via logit
adjustment", ICLR 2021).

A classifier trained with plain cross-entropy learns P(label | text), which carries the training
prior: a class with 0.4 % of the rows needs overwhelming evidence to win the argmax, so its recall
and the macro-F1 stay low. Post hoc, subtracting tau * log(prior) from every label's log-probability
(and renormalising) moves the decision towards the balanced error; tau = 1 is the Bayes-optimal
correction for the balanced error, tau = 0 changes nothing. tunelab tunes tau on the validation file
for macro-F1, stores it with the model (ModelMeta.logit_adjustment, with ModelMeta.class_prior),
and the Predictor applies it to every distribution the model reports, after the temperature.

The training-time variant (`--loss logit_adjusted`) adds tau * log(prior) to the logits inside the
loss only (tunelab.training.losses), so that the raw logits themselves learn the balanced decision.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TAU_GRID = tuple(round(0.1 * i, 1) for i in range(0, 21))
"""Strengths tried on the validation file: 0 (none) to 2 in steps of 0.1."""
PRIOR_FLOOR = 1e-6
"""A class absent from the training file would get log(0); it is treated as this rare instead."""


def class_prior(gold_idx: Sequence[int], n_labels: int) -> list[float]:
    """Shares of each label among the training rows, in label order."""
    counts = np.bincount(np.asarray(gold_idx, dtype=np.int64), minlength=n_labels).astype(np.float64)
    return (counts / max(1.0, counts.sum())).tolist()


def log_prior(prior: Sequence[float]) -> np.ndarray:
    return np.log(np.clip(np.asarray(prior, dtype=np.float64), PRIOR_FLOOR, None))


def adjust(logp, prior: Sequence[float] | None, tau: float) -> np.ndarray:
    """log-probabilities after subtracting tau * log(prior), rows renormalised; tau = 0 (or no
    prior) returns the input unchanged."""
    from scipy.special import log_softmax

    logp = np.asarray(logp, dtype=np.float64)
    if not tau or prior is None or logp.size == 0:
        return logp
    shifted = np.where(np.isfinite(logp), logp - tau * log_prior(prior)[None, :], -np.inf)
    return log_softmax(shifted, axis=-1)


def fit_tau(logp, gold_idx: Sequence[int], prior: Sequence[float], *, grid: Sequence[float] = TAU_GRID) -> tuple[float, float, float]:
    """(tau, macro-F1 at tau, macro-F1 at tau = 0) for the tau of `grid` with the best macro-F1 of
    the argmax decisions on (`logp`, `gold_idx`); ties go to the smaller tau (the smaller change)."""
    from sklearn.metrics import f1_score

    logp = np.asarray(logp, dtype=np.float64)
    gold_idx = np.asarray(gold_idx, dtype=np.int64)
    labels = list(range(logp.shape[1]))
    scores = []
    for tau in grid:
        pred = adjust(logp, prior, tau).argmax(axis=1)
        scores.append(float(f1_score(gold_idx, pred, labels=labels, average="macro", zero_division=0)))
    best = int(np.argmax(scores))  # argmax takes the first, the smallest tau, on ties
    base = scores[list(grid).index(0.0)] if 0.0 in grid else float("nan")
    return float(grid[best]), scores[best], base
