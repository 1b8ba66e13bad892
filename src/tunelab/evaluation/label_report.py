"""The files of `tunelab labels inspect` and `tunelab labels issues`: read the data, compute
(tunelab.evaluation.label_audit), write a JSON report, PNGs, a review file and a cleaned training
file. Every check runs before the first file is written."""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tunelab.data.labels import normalize_label, sort_labels
from tunelab.data.readers import Example, read_prompt_completion
from tunelab.errors import InvalidInputError
from tunelab.evaluation import label_audit as A
from tunelab.fsutil import output_dir, write_json, write_jsonl


@contextmanager
def _bar(total: int, desc: str, unit: str, show: bool):
    """A tqdm bar on stderr (a widget in a notebook), or nothing when `show` is false: the callable
    advancing it, or None. The cross-validation of 29k Amazon reviews took 45-80 s on two cores
    (minutes on the full 200k) with nothing on the screen."""
    if not show:
        yield None
        return
    from tunelab.console import tqdm_class

    with tqdm_class()(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar.update


def _probabilities(train: list[Example], labels: list[str], *, model: str | None, store, folds: int,
                   seed: int, batch_size: int = 32, progress: bool = False) -> A.Probabilities:
    if model is None:
        k = A.fold_count([e.completion for e in train], folds)
        with _bar(k, f"Cross-validating TF-IDF on {len(train):,} rows", "fold", progress) as advance:
            return A.cross_validated_probs([e.prompt for e in train], [e.completion for e in train], labels,
                                           folds=folds, seed=seed, progress=advance)
    from tunelab.inference.predictor import load_predictor

    predictor = load_predictor(model, store)
    with _bar(len(train), f"Scoring with {model}", "row", progress) as advance:
        return A.model_probs(predictor, [e.prompt for e in train], labels, batch_size=batch_size, progress=advance)


def inspect_labels(train_path: str | Path, *, valid_path: str | Path | None = None,
                   test_path: str | Path | None = None, model: str | None = None, store=None,
                   folds: int = A.DEFAULT_FOLDS, seed: int = 0, rare: int = A.RARE_COUNT,
                   overlap: float = A.MERGE_OVERLAP, confusion: bool = True, progress: bool = False) -> dict:
    """The label-set report: counts and shares per split, imbalance, rare classes, duplicates and
    conflicts, and (`confusion`) the confusable pairs and a suggested merge map from out-of-sample
    probabilities (cross-validated TF-IDF, or `model`'s scores). `progress`: bars on stderr for the
    near-duplicate search and the cross-validation (or the model's scoring)."""
    splits = {"train": read_prompt_completion(train_path)}
    if valid_path:
        splits["valid"] = read_prompt_completion(valid_path)
    if test_path:
        splits["test"] = read_prompt_completion(test_path)
    labels, counts = A.label_counts(splits)
    train_counts = counts["train"]
    present = [n for n in train_counts.values() if n > 0]
    n_rows = min(sum(len(rows) for rows in splits.values()), A.NEAR_DUPLICATE_ROWS)
    with _bar(n_rows, "Near duplicates", "row", progress) as advance:
        duplicates = A.duplicates(splits, progress=advance)
    report: dict = {
        "files": {split: str(p) for split, p in (("train", train_path), ("valid", valid_path), ("test", test_path)) if p},
        "labels": labels,
        "counts": counts,
        "shares": {split: {label: (n / max(1, sum(c.values()))) for label, n in c.items()} for split, c in counts.items()},
        "n": {split: len(rows) for split, rows in splits.items()},
        "imbalance_ratio": (max(present) / min(present)) if present else None,
        "rare_threshold": rare,
        "rare": {label: n for label, n in train_counts.items() if n < rare},
        "missing_in_train": [label for label, n in train_counts.items() if n == 0],
        "duplicates": duplicates,
        "confusable_pairs": None, "suggested_merges": None, "probabilities": None,
    }
    # A class with one training row cannot be cross-validated: the pairs are found among the others,
    # and the report lists it as rare (the first thing to merge).
    scored = [e for e in splits["train"] if train_counts[normalize_label(e.completion)] >= 2]
    report["unscored"] = [label for label, n in train_counts.items() if n == 1]
    if confusion and len({normalize_label(e.completion) for e in scored}) >= 2:
        learnable = A.check_learnable([e.completion for e in scored], folds=folds, source=str(train_path))
        probs = _probabilities(scored, learnable, model=model, store=store, folds=folds, seed=seed,
                               progress=progress)
        pairs = A.confusable_pairs(scored, probs)
        report.update(probabilities=probs.source, confusable_pairs=pairs,
                      suggested_merges=A.suggest_merges(pairs, train_counts, overlap=overlap, rare=rare),
                      cv_accuracy=float((probs.probs.argmax(1) == A.label_index(
                          [e.completion for e in scored], probs.labels)).mean()))
    return report


def write_inspect_report(report: dict, out_dir: str | Path) -> dict[str, str]:
    """labels_report.json, class_counts.png and (when there are suggestions) merge_map.json."""
    from tunelab.evaluation.plots import plot_class_counts

    out = output_dir(out_dir)
    files = {"counts_png": str(plot_class_counts(report["counts"], report["labels"], out / "class_counts.png"))}
    if report.get("suggested_merges"):
        write_json(out / "merge_map.json", report["suggested_merges"])
        files["merge_map"] = str(out / "merge_map.json")
    files["report"] = str(out / "labels_report.json")
    report["written"] = files
    write_json(out / "labels_report.json", report)
    return files


def find_label_issues(train_path: str | Path, *, model: str | None = None, store=None, folds: int = A.DEFAULT_FOLDS,
                      seed: int = 0, batch_size: int = 32, progress: bool = False,
                      ) -> tuple[list[Example], A.Probabilities, list[dict]]:
    """(the training rows, their out-of-sample probabilities, the issues most suspicious first);
    `progress`: a bar on stderr for the cross-validation (or the model's scoring)."""
    train = read_prompt_completion(train_path)
    scored, unscored = train, []
    if model is None:
        # A class with one row cannot be cross-validated (no fold could learn it): its row is left
        # unscored, as `labels inspect` leaves it, rather than refusing the whole file, which the
        # rarest Amazon categories of a --train-size sample would make the usual case.
        counts = Counter(normalize_label(e.completion) for e in train)
        unscored = sort_labels([label for label, n in counts.items() if n == 1])
        if len(counts) - len(unscored) >= 2:
            scored = [e for e in train if counts[normalize_label(e.completion)] >= 2]
    labels = A.check_learnable([e.completion for e in scored], folds=folds, source=str(train_path),
                               cross_validated=model is None)
    probs = _probabilities(scored, labels, model=model, store=store, folds=folds, seed=seed, batch_size=batch_size,
                           progress=progress)
    probs.unscored = unscored
    return train, probs, A.find_issues(scored, probs)


def acted_on(train: list[Example], issues: list[dict], *, limit: int | None = None,
             keep_rare: int = A.RARE_COUNT) -> tuple[list[dict], list[dict]]:
    """(issues to drop or relabel, issues left alone because their given class is rare): the first
    `limit` issues (all by default), except those of a class with fewer than `keep_rare` training
    rows. A judge that saw a class a handful of times (cross-validated TF-IDF most of all) flags
    its correct rows too; removing them would erase the class, so they stay listed for review."""
    from collections import Counter

    counts = Counter(e.completion for e in train)
    head = issues if limit is None else issues[:limit]
    rare = [i for i in head if counts[i["given"]] < keep_rare]
    return [i for i in head if counts[i["given"]] >= keep_rare], rare


def write_issues(train_path: str | Path, train: list[Example], issues: list[dict], out_dir: str | Path, *,
                 action: str | None = None, limit: int | None = None, keep_rare: int = A.RARE_COUNT) -> dict[str, str]:
    """issues.jsonl (every issue, most suspicious first) and, with `action` "drop" or "relabel",
    train.jsonl cleaned of the first `limit` issues (all by default; rows of a class with fewer than
    `keep_rare` training rows are kept, see `acted_on`) plus changes.jsonl, what was dropped or
    relabelled. The test file is never read or written here."""
    if action not in (None, "drop", "relabel"):
        raise InvalidInputError(f"Unknown action {action!r}: use drop or relabel.")
    if limit is not None and limit < 0:
        raise InvalidInputError(f"--limit must be 0 or more, got {limit}.")
    out = output_dir(out_dir, create=False)
    if action and out.resolve() == Path(train_path).resolve().parent:
        raise InvalidInputError(f"--out {out} holds the training file; write the cleaned file elsewhere.")
    files = {}
    if action:  # an earlier run's cleaned file must not outlive a run killed before it writes its own
        for stale in ("train.jsonl", "changes.jsonl"):
            (out / stale).unlink(missing_ok=True)
    write_jsonl(out / "issues.jsonl", issues)
    files["issues"] = str(out / "issues.jsonl")
    if action:
        chosen = {i["line"]: i for i in acted_on(train, issues, limit=limit, keep_rare=keep_rare)[0]}
        rows, changes = [], []
        for e in train:
            issue = chosen.get(e.line)
            if issue is None:
                rows.append({"prompt": e.prompt, "completion": e.completion})
            elif action == "drop":
                changes.append({"line": e.line, "action": "dropped", "given": e.completion,
                                "suggested": issue["suggested"], "score": issue["score"]})
            else:
                rows.append({"prompt": e.prompt, "completion": issue["suggested"]})
                changes.append({"line": e.line, "action": "relabelled", "given": e.completion,
                                "new": issue["suggested"], "score": issue["score"]})
        write_jsonl(out / "changes.jsonl", changes)
        write_jsonl(out / "train.jsonl", rows)
        files.update(changes=str(out / "changes.jsonl"), train=str(out / "train.jsonl"))
    return files


def recovered_share(ranking: np.ndarray, flipped: set[int]) -> float:
    """Share of the `flipped` rows among the first len(flipped) of `ranking` (the planted-noise check)."""
    if not flipped:
        return 0.0
    return len(set(int(i) for i in ranking[: len(flipped)]) & flipped) / len(flipped)


def summary_counts(report: dict) -> list[list[str]]:
    """Rows of the counts table: label, train count, train share, and the other splits' counts."""
    splits = list(report["counts"])
    rows = []
    for label in sorted(report["labels"], key=lambda l: -report["counts"]["train"].get(l, 0)):
        share = report["shares"]["train"][label]
        # one row of 2,500 is 0.04 %: "0.0%" would read as a class with no training row
        row = [label, str(report["counts"]["train"][label]), f"{share:.2%}" if 0 < share < 0.001 else f"{share:.1%}"]
        row += [str(report["counts"][s][label]) for s in splits[1:]]
        rows.append(row)
    return rows
