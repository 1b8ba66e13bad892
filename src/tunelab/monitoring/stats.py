"""The statistics of `tunelab monitor`, as pure functions over arrays and lists (no store, no model).

- label drift: the window's predicted-label counts against the reference's (chi-square test of
  homogeneity of the two samples, scipy.stats.chi2_contingency; Jensen-Shannon distance, base 2, so
  it lies in [0, 1], scipy.spatial.distance.jensenshannon);
- confidence drift: two-sample Kolmogorov-Smirnov test of the top-1 probabilities
  (scipy.stats.ks_2samp);
- text drift: a classifier (TF-IDF + logistic regression, scikit-learn) trained to tell reference
  prompts from served prompts; its cross-validated ROC-AUC is 0.5 when it cannot (no drift) and
  approaches 1 when the served text is of another kind; the served prompts it is surest about are
  the most telling examples;
- data quality: empty, truncated, non-text and duplicate prompts;
- performance without labels (confidence-based, the idea of NannyML's CBPE): with calibrated
  probabilities, P(prediction correct) = top-1 probability, so the expected accuracy of a window is
  the mean top-1 probability; expected good-vs-bad and one-off accuracy sum the probability of the
  labels on the prediction's side / within one of it (label rules of tunelab.data.labels);
- realized accuracy / good-vs-bad / one-off where people gave the true label (feedback).

Every probability matrix is [rows, labels] in the model's label order, rows summing to 1.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tunelab.data.labels import default_threshold, good_vs_bad, ordinal_values
from tunelab.errors import InvalidInputError

# Smoothing of the expected label shares when there is no reference sample to test against.
PSEUDO_COUNT = 0.5
NON_TEXT_LETTER_SHARE = 0.5
TEXT_DRIFT_MAX_PER_SIDE = 1000
TEXT_DRIFT_FOLDS = 5
TEXT_DRIFT_MIN_PER_SIDE = 20

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
# Anything but whitespace and ASCII punctuation (the separator "###", "..."): letters, digits, and
# the emoji of a review such as "😍😍👍", which has content (non-text, not empty).
_CONTENT = re.compile(r"[^\s!-/:-@\[-`{-~]")
_LETTER = re.compile(r"[^\W\d_]")
_ASCII_LETTERS = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1))
_BROKEN = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f]")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# --- probabilities --------------------------------------------------------------------------------


def normalise(probs) -> np.ndarray:
    """Rows renormalised to sum to 1 (an lm's label probabilities sum to less); zero rows uniform."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    if p.ndim != 2:
        raise ValueError(f"expected a [rows, labels] matrix, got shape {p.shape}")
    sums = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / max(1, p.shape[1]))
    return np.where(sums > 0, p / np.where(sums > 0, sums, 1.0), uniform)


def apply_temperature(probs, temperature: float | None) -> np.ndarray:
    """Temperature scaling of probabilities: softmax(log p / T). T = None or 1 leaves them as they are."""
    p = normalise(probs)
    if temperature is None or temperature == 1.0:
        return p
    if not temperature > 0:
        raise InvalidInputError(f"A temperature must be positive, got {temperature}.")
    with np.errstate(divide="ignore"):
        logits = np.log(p) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(probs, gold_idx: Sequence[int]) -> float:
    """The temperature that minimises the negative log-likelihood of the gold labels (Guo et al.,
    2017), on held-out rows. Used by tests and by callers without a model-supplied temperature."""
    from scipy.optimize import minimize_scalar

    p = normalise(probs)
    gold = np.asarray(gold_idx, dtype=np.int64)
    with np.errstate(divide="ignore"):
        logp = np.log(np.clip(p, 1e-300, None))

    def nll(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(gold)), gold]))

    result = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(result.x))


def top1_and_margin(probs) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the highest probability, and its lead over the second (the review queue's order)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[1] == 1:
        return p[:, 0], p[:, 0]
    part = np.sort(p, axis=1)
    return part[:, -1], part[:, -1] - part[:, -2]


# --- label drift ----------------------------------------------------------------------------------


def label_counts(predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros(len(labels), dtype=np.int64)
    for label in predicted:
        i = index.get(label)
        if i is not None:
            counts[i] += 1
    return counts


def label_drift(window_counts, reference_counts) -> dict:
    """Chi-square test that the window's counts and the reference's come from one distribution, and
    the Jensen-Shannon distance (base 2, in [0, 1]) between the two distributions.

    The reference is a sample too (the model's answers on a few hundred validation rows), so the test
    is the two-sample one (a 2 x labels contingency table), not goodness of fit to the reference's
    shares taken as exact: with 28 categories, a 400-row reference and windows of 500 drawn from the
    very same distribution, goodness of fit gave p < 0.01 in 78 % of the windows, this test in 0.3 %."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, chisquare

    obs = np.asarray(window_counts, dtype=np.float64)
    ref = np.asarray(reference_counts, dtype=np.float64)
    if obs.shape != ref.shape:
        raise ValueError(f"window has {obs.shape} label counts, reference {ref.shape}")
    n = obs.sum()
    expected_share = (ref + PSEUDO_COUNT) / (ref.sum() + PSEUDO_COUNT * len(ref))
    out = {"n": int(n), "window_share": (obs / n).tolist() if n else [0.0] * len(obs),
           "reference_share": (ref / ref.sum()).tolist() if ref.sum() else [0.0] * len(ref),
           "chi2": None, "p_value": None, "js_distance": None}
    if n == 0 or len(obs) < 2:
        return out
    table = np.vstack([obs, ref])
    seen = table.sum(axis=0) > 0  # a label neither side predicted adds nothing (and no zero expected count)
    if not ref.sum():
        chi2, p = chisquare(obs, f_exp=expected_share * n)
    elif seen.sum() < 2:
        chi2, p = 0.0, 1.0  # both always answer the same single label
    else:
        chi2, p = chi2_contingency(table[:, seen], correction=False)[:2]
    js = jensenshannon(obs / n, ref / ref.sum() if ref.sum() else expected_share, base=2)
    out.update(chi2=float(chi2), p_value=float(p), js_distance=float(js))
    return out


# --- confidence drift -----------------------------------------------------------------------------


def confidence_drift(window_top1, reference_top1) -> dict:
    """Two-sample Kolmogorov-Smirnov test of the top-1 probabilities."""
    from scipy.stats import ks_2samp

    w = np.asarray(window_top1, dtype=np.float64)
    r = np.asarray(reference_top1, dtype=np.float64)
    out = {"n": int(len(w)), "window_mean": float(w.mean()) if len(w) else None,
           "reference_mean": float(r.mean()) if len(r) else None, "ks": None, "p_value": None}
    if len(w) and len(r):
        result = ks_2samp(w, r)
        out.update(ks=float(result.statistic), p_value=float(result.pvalue))
    return out


# --- text drift -----------------------------------------------------------------------------------


def text_drift(reference_texts: Sequence[str], window_texts: Sequence[str], *, seed: int = 0,
               max_per_side: int = TEXT_DRIFT_MAX_PER_SIDE, folds: int = TEXT_DRIFT_FOLDS,
               n_examples: int = 5) -> dict:
    """Can a classifier tell the window's prompts from the reference's? Both sides are sampled to
    the same size (at most `max_per_side`), a TF-IDF (word 1-2-grams) + logistic regression model
    is cross-validated on them, and the out-of-fold scores give the ROC-AUC. `examples` are the
    served prompts it was surest came from serving; `terms` the words that most say "served".
    AUC None when either side has fewer than TEXT_DRIFT_MIN_PER_SIDE texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from tunelab.data.words import TOKEN_PATTERN

    ref = [t for t in reference_texts if t is not None]
    win = [t for t in window_texts if t is not None]
    size = min(len(ref), len(win), max_per_side)
    out = {"n_reference": size, "n_window": size, "auc": None, "examples": [], "terms": []}
    if size < TEXT_DRIFT_MIN_PER_SIDE:
        return out
    rng = np.random.default_rng(seed)
    ref_s = [ref[i] for i in rng.choice(len(ref), size, replace=False)]
    win_idx = rng.choice(len(win), size, replace=False)
    win_s = [win[i] for i in win_idx]
    texts = ref_s + win_s
    y = np.r_[np.zeros(size), np.ones(size)]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=20000,
                                 token_pattern=TOKEN_PATTERN)
    try:
        x = vectorizer.fit_transform(texts)
    except ValueError:  # no term occurs twice: nothing to tell the sides apart by
        out["auc"] = 0.5
        return out
    model = LogisticRegression(C=1.0, solver="liblinear")
    cv = StratifiedKFold(n_splits=min(folds, size), shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    out["auc"] = float(roc_auc_score(y, scores))
    served = scores[size:]
    shown: set[str] = set()
    for i in np.argsort(-served):  # each text once: a window of repeated prompts would show one thrice
        if len(out["examples"]) == n_examples:
            break
        if win_s[int(i)] not in shown:
            shown.add(win_s[int(i)])
            out["examples"].append({"text": win_s[int(i)], "score": float(served[int(i)])})
    model.fit(x, y)
    names = vectorizer.get_feature_names_out()
    coef = model.coef_[0]
    out["terms"] = [str(names[i]) for i in np.argsort(-coef)[:10] if coef[i] > 0]
    return out


# --- data quality ---------------------------------------------------------------------------------


def is_empty(prompt: str) -> bool:
    """Nothing but whitespace and ASCII punctuation: "", spaces, or only the separator
    ("\\n\\n###\\n\\n"). An emoji-only review is not empty; `is_non_text` counts it."""
    return _CONTENT.search(prompt) is None


def is_non_text(prompt: str) -> bool:
    """Mostly not letters (code, numbers, base64, binary junk): under half of the non-space
    characters are letters, once a trailing separator (punctuation at the end, such as "###") is
    set aside; or it holds control characters or U+FFFD (a decoding error). Empty prompts are not
    counted here (see `is_empty`). Regular expressions, not Python loops: the server's log writer
    runs this on every prompt."""
    if _BROKEN.search(prompt):
        return True
    end = len(prompt)
    while end and _CONTENT.match(prompt[end - 1]) is None:  # the separator is short ASCII punctuation
        end -= 1
    chars = "".join(prompt[:end].split())
    if not chars:
        return False
    if chars.isascii():  # the common case, counted in C
        letters = len(chars) - len(chars.encode("ascii").translate(None, _ASCII_LETTERS))
    else:
        letters = len(_LETTER.findall(chars))
    return letters / len(chars) < NON_TEXT_LETTER_SHARE


def strip_separator(prompt: str, separator: str = "") -> str:
    """The text of a prompt without the model's separator (what a person wrote)."""
    return prompt[: -len(separator)] if separator and prompt.endswith(separator) else prompt


def prompt_digest(prompt: str) -> str:
    """Duplicates are found by this hash, so they are counted even when texts are not kept."""
    return hashlib.sha256(prompt.strip().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def data_quality(*, empty: Sequence[bool], non_text: Sequence[bool], truncated: Sequence[bool],
                 digests: Sequence[str | None]) -> dict:
    """Shares of empty, non-text, truncated and duplicate (an earlier row of the window had the
    same prompt) prompts. Rows whose flags are unknown (None) are left out of that share."""
    def share(flags) -> float | None:
        known = [bool(f) for f in flags if f is not None]
        return float(np.mean(known)) if known else None

    seen: set[str] = set()
    dup = []
    for d in digests:
        if d is None:
            dup.append(None)
            continue
        dup.append(d in seen)
        seen.add(d)
    return {"n": len(digests), "empty": share(empty), "non_text": share(non_text), "truncated": share(truncated),
            "duplicates": share(dup)}


# --- performance ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelGeometry:
    """Which labels count as right for good-vs-bad and one-off, given the predicted one (None
    for labels that are not ordinal)."""

    same_side: np.ndarray | None  # [k, k]: label j is on the same side of the cut as label i
    within_one: np.ndarray | None  # [k, k]: |value j - value i| <= 1

    @classmethod
    def of(cls, labels: Sequence[str], threshold: float | None = None) -> "LabelGeometry":
        values = ordinal_values(labels)
        if values is None:
            return cls(None, None)
        if threshold is None:
            threshold = default_threshold(labels)
        good = good_vs_bad(labels, threshold)
        g = np.array([good[label] for label in labels])
        v = np.array(values)
        return cls(g[:, None] == g[None, :], np.abs(v[:, None] - v[None, :]) <= 1)


def expected_performance(probs, labels: Sequence[str], *, threshold: float | None = None) -> dict:
    """Accuracy, good-vs-bad and one-off expected from (calibrated) probabilities, with no labels:
    for each row the probability that the prediction (argmax) is right / on the right side / within
    one star, averaged. Exact when the probabilities are calibrated."""
    p = normalise(probs)
    n = len(p)
    if n == 0:
        return {"n": 0, "accuracy": None, "good_vs_bad_accuracy": None, "one_off_accuracy": None}
    pred = p.argmax(axis=1)
    geo = LabelGeometry.of(labels, threshold)
    out = {"n": n, "accuracy": float(p[np.arange(n), pred].mean()),
           "good_vs_bad_accuracy": None, "one_off_accuracy": None}
    if geo.same_side is not None:
        out["good_vs_bad_accuracy"] = float((p * geo.same_side[pred]).sum(axis=1).mean())
        out["one_off_accuracy"] = float((p * geo.within_one[pred]).sum(axis=1).mean())
    return out


def realized_performance(predicted: Sequence[str], true: Sequence[str], labels: Sequence[str], *,
                         threshold: float | None = None) -> dict:
    """Accuracy, good-vs-bad and one-off of predictions against labels people gave."""
    n = len(true)
    if n != len(predicted):
        raise ValueError(f"{len(predicted)} predictions but {n} true labels")
    out = {"n": n, "accuracy": None, "good_vs_bad_accuracy": None, "one_off_accuracy": None}
    if n == 0:
        return out
    out["accuracy"] = float(np.mean([p == t for p, t in zip(predicted, true)]))
    geo = LabelGeometry.of(labels, threshold)
    if geo.same_side is not None:
        index = {label: i for i, label in enumerate(labels)}
        pairs = [(index[p], index[t]) for p, t in zip(predicted, true) if p in index and t in index]
        if pairs:
            pi, ti = np.array(pairs).T
            out["good_vs_bad_accuracy"] = float(geo.same_side[pi, ti].mean())
            out["one_off_accuracy"] = float(geo.within_one[pi, ti].mean())
    return out


# --- windows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowSpec:
    """`1d`, `6h`, `30m`, `1w`, `3600s`: windows of time; a bare number (`500`): of that many rows."""

    kind: str  # "time" or "count"
    size: float  # seconds, or rows

    @classmethod
    def parse(cls, text: str) -> "WindowSpec":
        m = _WINDOW.match(str(text))
        if not m:
            raise InvalidInputError(f"Cannot read the window {text!r}.",
                                    hint="Give a duration (30m, 6h, 1d, 1w) or a number of predictions (500).")
        value, unit = float(m.group(1)), m.group(2).lower()
        if value <= 0:
            raise InvalidInputError(f"A window must be positive, got {text!r}.")
        if unit:
            return cls("time", value * _UNITS[unit])
        if not value.is_integer():
            raise InvalidInputError(f"A window of predictions must be a whole number, got {text!r}.")
        return cls("count", value)

    def describe(self) -> str:
        if self.kind == "count":
            return f"{int(self.size)} predictions"
        for unit, seconds in sorted(_UNITS.items(), key=lambda kv: -kv[1]):
            if self.size % seconds == 0:
                return f"{int(self.size // seconds)}{unit}"
        return f"{self.size:g}s"


def split_windows(times: Sequence[float], spec: WindowSpec, *, start: float | None = None) -> list[tuple[int, int]]:
    """[start, stop) row ranges of consecutive windows over rows sorted by time. Time windows are
    aligned on `start` (default: the first row's time, floored to the window) and empty ones are
    skipped; count windows are consecutive runs of `size` rows, the last one possibly shorter."""
    n = len(times)
    if n == 0:
        return []
    if spec.kind == "count":
        size = int(spec.size)
        return [(i, min(n, i + size)) for i in range(0, n, size)]
    t = np.asarray(times, dtype=np.float64)
    origin = math.floor(t[0] / spec.size) * spec.size if start is None else start
    bucket = np.floor((t - origin) / spec.size).astype(np.int64)
    out, begin = [], 0
    for i in range(1, n + 1):
        if i == n or bucket[i] != bucket[begin]:
            out.append((begin, i))
            begin = i
    return out
