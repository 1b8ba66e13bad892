"""What is wrong with a label set, measured: `tunelab labels inspect` and `tunelab labels issues`.

- the shape of the label set: counts and shares per split, the imbalance ratio, classes too rare
  to learn, exact and near-duplicate prompts, and the same prompt with different labels;
- out-of-sample probabilities, from k-fold cross-validated TF-IDF + logistic regression (the
  `tfidf` baseline's pipeline) or from a fine-tuned model's scores;
- from those, with cleanlab's confident learning: the most confusable class pairs
  (`cleanlab.dataset.find_overlapping_classes`), a suggested merge map, and the examples whose
  given label the data contradicts (`cleanlab.filter.find_label_issues`, ranked by
  `cleanlab.rank.get_label_quality_scores`).

Everything here reads and computes; the files are written by tunelab.evaluation.label_report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tunelab.data.labels import normalize_label, preview, sort_labels
from tunelab.data.readers import Example
from tunelab.errors import InvalidInputError

DEFAULT_FOLDS = 5
RARE_COUNT = 20
"""A class with fewer training examples than this is reported as too rare to learn: one fine-tuning
epoch shows it less than once per batch-size steps, and its test F1 rests on a handful of rows."""
NEAR_DUPLICATE_COSINE = 0.9
NEAR_DUPLICATE_ROWS = 50_000
"""Rows (of all splits, in order) compared for near duplicates; the rest are not searched."""
MERGE_OVERLAP = 0.2
"""A pair of classes is suggested for merging when out-of-sample predictions put at least this share
of the pair's rows in the other class (both directions counted)."""
MIN_MERGE_ROWS = 2
"""A rare class is suggested for merging into another only when at least this many of its rows are
predicted as that class (and at least MERGE_OVERLAP of them)."""


@dataclass
class Probabilities:
    """Out-of-sample probabilities of the training rows' labels."""

    probs: np.ndarray
    """[n_rows, n_labels], rows sum to 1, columns in `labels` order."""
    labels: list[str]
    source: str
    """How they were made, in words (for the report)."""
    unscored: list[str] = field(default_factory=list)
    """Classes whose rows were not scored: one training row cannot be cross-validated."""


def label_index(completions: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {normalize_label(label): i for i, label in enumerate(labels)}
    return np.array([index[normalize_label(c)] for c in completions], dtype=np.int64)


def check_learnable(completions: Sequence[str], *, folds: int, source: str, cross_validated: bool = True) -> list[str]:
    """The labels of a training file, when its rows can be scored: at least two classes and, for
    k-fold cross-validation (`cross_validated`), at least two examples of each (and `folds` >= 2).
    A model's own probabilities (`-m`) score a one-example class as well as any other."""
    counts = Counter(normalize_label(c) for c in completions)
    if len(counts) < 2:
        raise InvalidInputError(f"{source} has a single class ({preview(list(counts))}); there is nothing to "
                                "confuse it with.", hint="Label issues need at least two classes.")
    if not cross_validated:
        return sort_labels(list(counts))
    too_few = sorted(label for label, n in counts.items() if n < 2)
    if too_few:
        raise InvalidInputError(
            f"{source} has class(es) with a single example: {preview(too_few, 20)}. Cross-validation cannot "
            "score a class it never trained on.",
            hint="Merge them into a related label (tunelab labels merge --merge 'RARE+BIG=BIG'), or drop their rows.")
    if folds < 2:
        raise InvalidInputError(f"--folds must be at least 2, got {folds}.")
    return sort_labels(list(counts))


def audit_pipeline(seed: int = 0):
    """The `tfidf` baseline's features (word 1-2 grams, sublinear tf; n-grams of one row dropped,
    which makes each of the k fits several times faster) and a logistic regression with balanced
    class weights and a weaker penalty (C = 4). Measured on clothing `Class Name` with 5 % of 6,000
    training labels flipped at random: 64 % of the flips in the top-k, against 46 % with the
    baseline's unweighted C = 1 (whose probabilities make every rare-class row look suspicious)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from tunelab.data.words import TOKEN_PATTERN

    return Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, token_pattern=TOKEN_PATTERN)),
        ("clf", LogisticRegression(C=4.0, class_weight="balanced", max_iter=1000, random_state=seed)),
    ])


def fold_count(completions: Sequence[str], folds: int = DEFAULT_FOLDS) -> int:
    """The folds `cross_validated_probs` uses: `folds`, fewer when the rarest class has fewer rows."""
    return max(2, min(folds, min(Counter(normalize_label(c) for c in completions).values())))


def cross_validated_probs(prompts: Sequence[str], completions: Sequence[str], labels: Sequence[str], *,
                          folds: int = DEFAULT_FOLDS, seed: int = 0,
                          progress: Callable[[int], object] | None = None) -> Probabilities:
    """k-fold cross-validated TF-IDF + LR probabilities: each row scored by a model that never saw
    it. Classes with fewer rows than `folds` are stratified as far as they go. `progress(1)` is
    called as each fold is done: a fold of 29k Amazon reviews takes 10-20 s on two cores, and
    without it `labels inspect|issues` sat silent for minutes."""
    from sklearn.model_selection import StratifiedKFold

    labels = list(labels)
    y = label_index(completions, labels)
    k = fold_count(completions, folds)
    import warnings

    from threadpoolctl import threadpool_limits

    texts = np.asarray(list(prompts), dtype=object)
    probs = np.zeros((len(y), len(labels)), dtype=np.float64)
    # cross_val_predict's folds, fitted one at a time so that each can be reported; a class missing
    # from a fold's training part gets probability 0 there, as cross_val_predict gives it.
    # One BLAS thread: on a busy machine, threads waiting for each other made a fit 4x slower.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # sklearn warns when a fold lacks a rare class; cleanlab handles the zeros
        for fit_rows, score_rows in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(texts, y):
            model = audit_pipeline(seed).fit(list(texts[fit_rows]), y[fit_rows])
            probs[np.ix_(score_rows, model.classes_)] = model.predict_proba(list(texts[score_rows]))
            if progress is not None:
                progress(1)
    fewer = (f", {k} folds, not {folds}, as the rarest scored class has {int(np.bincount(y).min())} rows"
             if k < folds else "")
    return Probabilities(_normalised(probs), labels, f"{k}-fold cross-validated TF-IDF + logistic regression{fewer}")


def model_probs(predictor, prompts: Sequence[str], labels: Sequence[str], *, batch_size: int = 32,
                progress: Callable[[int], object] | None = None) -> Probabilities:
    """A fine-tuned model's label probabilities (calibrated, as it reports them), in `labels` order.
    They are out of sample only for rows the model did not train on."""
    own = list(predictor.labels or [])
    if not own:
        raise InvalidInputError(f"{predictor.model_id} is not a classification model.")
    order = [next((i for i, mine in enumerate(own) if normalize_label(mine) == normalize_label(label)), None)
             for label in labels]
    missing = [label for label, i in zip(labels, order) if i is None]
    if missing:
        raise InvalidInputError(f"The data has labels the model {predictor.model_id} never learned: {preview(missing)}.",
                                hint=f"Its labels are {preview(own, 40)}.")
    extra = {} if progress is None else {"progress": progress}  # called with the rows of each batch
    logp = np.asarray(predictor.score_labels(list(prompts), batch_size=batch_size, **extra), dtype=np.float64)
    return Probabilities(_normalised(np.exp(logp[:, order])), list(labels), f"scores of {predictor.model_id}")


def _normalised(probs) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)
    return p / p.sum(axis=1, keepdims=True)


# -- label issues --------------------------------------------------------------------------------


def find_issues(examples: Sequence[Example], probs: Probabilities) -> list[dict]:
    """Rows whose given label the probabilities contradict, most suspicious first: cleanlab's
    confident-learning filter, ranked by its label-quality score (self-confidence, the
    probability of the given label; lower is more suspicious). Each row: line, prompt, given and
    suggested label, the score and the suggested label's probability."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    y = label_index([e.completion for e in examples], probs.labels)
    scores = get_label_quality_scores(y, probs.probs)
    flagged = find_label_issues(y, probs.probs, filter_by="prune_by_noise_rate")
    out = []
    for i in np.argsort(scores, kind="stable"):
        if not flagged[i]:
            continue
        best = int(probs.probs[i].argmax())
        out.append({"line": examples[i].line, "prompt": examples[i].prompt,
                    "given": examples[i].completion, "suggested": _as_completion(probs.labels[best], examples[i]),
                    "score": round(float(scores[i]), 6), "suggested_probability": round(float(probs.probs[i, best]), 6)})
    return out


def quality_ranking(examples: Sequence[Example], probs: Probabilities) -> np.ndarray:
    """Row indices from the most to the least suspicious label (cleanlab's label-quality score)."""
    from cleanlab.rank import get_label_quality_scores

    y = label_index([e.completion for e in examples], probs.labels)
    return np.argsort(get_label_quality_scores(y, probs.probs), kind="stable")


def _as_completion(label: str, like: Example) -> str:
    """A label written as the file writes its completions (with or without the leading space)."""
    core = normalize_label(label)
    lead = like.completion[: len(like.completion) - len(like.completion.lstrip())]
    return lead + core


# -- the shape of a label set --------------------------------------------------------------------


def label_counts(splits: dict[str, Sequence[Example]]) -> tuple[list[str], dict[str, dict[str, int]]]:
    """(every label, sorted; {split: {label: rows}})."""
    counts = {split: Counter(normalize_label(e.completion) for e in rows) for split, rows in splits.items()}
    labels = sort_labels(sorted({label for c in counts.values() for label in c}))
    return labels, {split: {label: c.get(label, 0) for label in labels} for split, c in counts.items()}


def duplicates(splits: dict[str, Sequence[Example]], *, near: float = NEAR_DUPLICATE_COSINE,
               max_rows: int = NEAR_DUPLICATE_ROWS, progress: Callable[[int], object] | None = None) -> dict:
    """Exact duplicates (the same prompt text twice, in or across splits), conflicts (the same
    prompt with different labels) and near duplicates (TF-IDF cosine >= `near`, up to `max_rows`
    rows compared; `progress(n)` as n more are done), each with `split:line` references."""
    by_prompt: dict[str, list[tuple[str, Example]]] = defaultdict(list)
    for split, rows in splits.items():
        for e in rows:
            by_prompt[" ".join(e.prompt.split()).lower()].append((split, e))
    exact, conflicts = [], []
    for group in by_prompt.values():
        if len(group) < 2:
            continue
        entry = {"prompt": group[0][1].prompt[:200], "rows": [f"{s}:{e.line}" for s, e in group],
                 "labels": sorted({normalize_label(e.completion) for _, e in group})}
        (conflicts if len(entry["labels"]) > 1 else exact).append(entry)
    near_pairs = _near_duplicates([(s, e) for s, rows in splits.items() for e in rows][:max_rows], near,
                                  progress=progress)
    return {"exact": exact, "conflicts": conflicts, "near": near_pairs, "near_threshold": near}


def _near_duplicates(rows: list[tuple[str, Example]], threshold: float, block: int = 2000,
                     progress: Callable[[int], object] | None = None) -> list[dict]:
    """Candidates from the rarer words only (stop words and words of more than 5 % of the rows
    dropped, so the row-by-row products stay sparse: all words made them take 4 minutes on 22k rows),
    then confirmed with the cosine over every word. `progress(n)` after each block of n rows (20 s
    in all on 33k generated Amazon reviews)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tunelab.data.words import TOKEN_PATTERN

    if len(rows) < 2:
        return []
    texts = [e.prompt for _, e in rows]
    try:
        # rows are L2-normalised
        full = TfidfVectorizer(sublinear_tf=True, token_pattern=TOKEN_PATTERN).fit_transform(texts)
        rare = TfidfVectorizer(sublinear_tf=True, stop_words="english", token_pattern=TOKEN_PATTERN,
                               max_df=max(2, len(texts) // 20)).fit_transform(texts)
    except ValueError:  # no words at all
        return []
    pairs = []
    for start in range(0, rare.shape[0], block):
        sims = (rare[start:start + block] @ rare.T).tocoo()
        keep = (sims.col > sims.row + start) & (sims.data >= threshold)
        for i, j in zip(sims.row[keep] + start, sims.col[keep]):
            cosine = float(full[i].multiply(full[j]).sum())
            (si, ei), (sj, ej) = rows[i], rows[j]
            if cosine < threshold or " ".join(ei.prompt.split()).lower() == " ".join(ej.prompt.split()).lower():
                continue  # not near enough over all words, or an exact duplicate (reported as such)
            pairs.append({"rows": [f"{si}:{ei.line}", f"{sj}:{ej.line}"], "cosine": round(cosine, 4),
                          "labels": [normalize_label(ei.completion), normalize_label(ej.completion)],
                          "prompt": ei.prompt[:200]})
        if progress is not None:
            progress(min(block, rare.shape[0] - start))
    pairs.sort(key=lambda p: -p["cosine"])
    return pairs


def confusable_pairs(examples: Sequence[Example], probs: Probabilities, *, top: int = 15) -> list[dict]:
    """The class pairs the out-of-sample predictions mix up most, by the share of the pair's rows
    predicted as the other class (`mutual`), with each direction's share and cleanlab's estimate of
    the overlap (find_overlapping_classes: examples in the confident joint, joint probability)."""
    from cleanlab.dataset import find_overlapping_classes
    from sklearn.metrics import confusion_matrix

    k = len(probs.labels)
    y = label_index([e.completion for e in examples], probs.labels)
    cm = confusion_matrix(y, probs.probs.argmax(1), labels=list(range(k)))
    counts = cm.sum(axis=1)
    overlap = {}
    for _, row in find_overlapping_classes(labels=y, pred_probs=probs.probs).iterrows():
        a, b = sorted((int(row["Class Index A"]), int(row["Class Index B"])))
        overlap[(a, b)] = (int(row["Num Overlapping Examples"]), float(row["Joint Probability"]))
    out = []
    for a in range(k):
        for b in range(a + 1, k):
            mixed = int(cm[a, b] + cm[b, a])
            if not mixed:
                continue
            n_overlap, joint = overlap.get((a, b), (0, 0.0))
            out.append({"a": probs.labels[a], "b": probs.labels[b], "counts": [int(counts[a]), int(counts[b])],
                        "mutual": round(mixed / max(1, counts[a] + counts[b]), 4),
                        "a_as_b": round(cm[a, b] / max(1, counts[a]), 4), "b_as_a": round(cm[b, a] / max(1, counts[b]), 4),
                        "overlapping_examples": n_overlap, "joint_probability": round(joint, 6)})
    out.sort(key=lambda p: -p["mutual"])
    return out[:top]


def suggest_merges(pairs: Sequence[dict], counts: dict[str, int], *, overlap: float = MERGE_OVERLAP,
                   rare: int = RARE_COUNT) -> dict[str, str]:
    """A merge map ({old label: new label}, for `--merge-labels`): each pair with at least
    `overlap` of its rows predicted as the other class, the smaller class into the larger; and
    each class rarer than `rare` into the class its rows are most often predicted as, when that is
    at least `overlap` of them and at least two rows (one stray prediction, or one mislabelled row,
    is no evidence that two categories are one: QA saw 1 of 14 video_games rows suggest merging
    into pet_products). One level only (a class that absorbs others is not merged away), and never
    down to a single class."""
    mapping: dict[str, str] = {}

    def add(small: str, big: str) -> None:
        if small in mapping or small in mapping.values() or big in mapping:
            return
        if len(set(counts) - set(mapping) - {small}) < 2:
            return
        mapping[small] = big

    for pair in pairs:
        if pair["mutual"] >= overlap:
            small, big = sorted((pair["a"], pair["b"]), key=lambda label: (counts.get(label, 0), label))
            add(small, big)
    for label in sorted(counts, key=lambda l: counts[l]):
        if 0 < counts[label] < rare:
            involving = [(p["a_as_b"], p["b"]) if p["a"] == label else (p["b_as_a"], p["a"])
                         for p in pairs if label in (p["a"], p["b"])]
            if not involving:
                continue
            share, big = max(involving)
            if share >= overlap and round(share * counts[label]) >= MIN_MERGE_ROWS:
                add(label, big)
    return mapping
