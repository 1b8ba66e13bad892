"""Every rule about classification labels: how they are written, compared, sorted, shown, and
read as star ratings. Data preparation, training, evaluation, the CLI and the server all call
these, so a label means the same thing everywhere.

A label is a completion of classification data, kept exactly as written. The book's completions
start with a space (" 4"): " 4" and "4" are different tokens, and the space is part of what the
model learns to produce after the separator. So a model's labels are never rewritten; only a name
a person or a file gives for one ("4", "yes") is matched ignoring surrounding whitespace.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from tunelab.errors import InvalidInputError

COMPLETION_PREFIX = " "
# Binary data: a label that reads as one of these is the positive class (the legacy tool's list).
POSITIVE_WORDS = ("1", "yes", "y", "true", "positive", "pos")
STAR_VALUES = frozenset(range(1, 6))

_INTEGER = re.compile(r"[+-]?\d+")
# Table cells hold integers as "5", "5.0" or "5.": all of them are the label 5.
_INTEGRAL_CELL = re.compile(r"[+-]?\d+(\.0*)?")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


# --- writing ------------------------------------------------------------------------------------


def normalize_label(label: Any) -> str:
    """A label as a person names it: without surrounding whitespace (" 4" -> "4"). Use it to
    compare and to show names, never to rewrite a model's labels."""
    return str(label).strip()


def format_label(value: Any) -> str | None:
    """Label text from a table cell; None when missing. Integral numbers lose their ".0"
    (5, 5.0 and "5.0" all become "5") so a numeric column read as float still gives " 5"."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    text = normalize_label(value)
    if not text:
        return None
    return str(int(text.split(".")[0])) if _INTEGRAL_CELL.fullmatch(text) else text


def has_leading_space(completion: str) -> bool:
    """Whether a completion starts with whitespace, as the chapter's completions (" 4") do."""
    return completion[:1].isspace()


def with_leading_space(completion: str) -> str:
    """The completion for a label: one space in front, unless it already starts with whitespace.
    The space tokenizes better (it is how the words appear inside text)."""
    return completion if has_leading_space(completion) else COMPLETION_PREFIX + completion


# --- ordering and display -------------------------------------------------------------------------


def whitespace_variants(labels: Iterable[str]) -> list[list[str]]:
    """Groups of two or more labels that differ only in surrounding whitespace (" 4", "4", "4\n"):
    to a model they are different classes, which is never what the data meant."""
    groups: dict[str, list[str]] = {}
    for label in dict.fromkeys(labels):
        groups.setdefault(normalize_label(label), []).append(label)
    return [sorted(group, key=len, reverse=True) for group in groups.values() if len(group) > 1]


def label_sort_key(label: str):
    """Numbers in numeric order (` 2` before ` 10`), then text labels alphabetically."""
    text = normalize_label(label)
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def sort_labels(labels: Iterable[str]) -> list[str]:
    """The order of a built dataset's labels.json: numerically when every label is a plain decimal
    number, else alphabetically (a mixed set such as "10", "2", "n/a" stays in text order)."""
    labels = list(labels)
    if labels and all(_NUMBER.fullmatch(label) for label in labels):
        return sorted(labels, key=float)
    return sorted(labels)


def display_label(label: str) -> str:
    """A label as shown in tables, plots and `tunelab complete`: leading/trailing spaces made
    visible as ␣ (so " 4" and "4" look different) and line breaks as \\n."""
    text = str(label)
    core = text.strip(" ")
    lead = len(text) - len(text.lstrip(" "))
    trail = len(text) - len(text.rstrip(" ")) if core else 0
    core = core.replace("\n", "\\n").replace("\t", "\\t")
    return "␣" * lead + core + "␣" * trail


def preview(labels: Sequence[str], n: int = 8) -> str:
    """A short, quoted list for error messages (leading spaces stay visible in the quotes)."""
    shown = ", ".join(repr(label) for label in labels[:n])
    return shown + (f", … ({len(labels)} in all)" if len(labels) > n else "")


# --- ordinal labels (star ratings) --------------------------------------------------------------


def ordinal_values(labels: Sequence[str]) -> list[int] | None:
    """The labels as integers when every one of them is an integer (ignoring surrounding
    whitespace, so " 4" is 4); otherwise None. Ordinal labels get the distance-aware metrics."""
    if not labels:
        return None
    values = []
    for label in labels:
        text = normalize_label(label)
        if not _INTEGER.fullmatch(text):
            return None
        values.append(int(text))
    return values


def is_ordinal(labels: Sequence[str]) -> bool:
    return ordinal_values(labels) is not None


def is_star_rating(labels: Sequence[str]) -> bool:
    """1-5 star ratings (the book's "Predicted Star"): integer labels, all between 1 and 5."""
    values = ordinal_values(labels)
    return values is not None and set(values) <= STAR_VALUES


def default_threshold(labels: Sequence[str]) -> int | None:
    """The good-vs-bad cut for ordinal labels: the floor of the middle of the range, so 3 for 1-5
    stars and 5 for 1-10. None when the labels are not ordinal."""
    values = ordinal_values(labels)
    if values is None:
        return None
    return (min(values) + max(values)) // 2


def good_vs_bad(labels: Sequence[str], threshold: int | float | None = None) -> dict[str, bool]:
    """{label: True when good}: good is above `threshold`, bad is at or below it (1-3 stars are
    bad and 4-5 good with the default cut of 3). Raises InvalidInputError for non-ordinal labels."""
    values = ordinal_values(labels)
    if values is None:
        raise InvalidInputError(
            f"A good-vs-bad split needs integer labels such as star ratings, not {preview(labels)}.")
    if threshold is None:
        threshold = default_threshold(labels)
    return {label: value > threshold for label, value in zip(labels, values)}


# --- matching names to labels -------------------------------------------------------------------


def positive_class(labels: Sequence[str]) -> str | None:
    """For two classes: the one that reads as positive, else the first in sorted order (as the
    legacy tool chose). None unless there are exactly two labels."""
    if len(labels) != 2:
        return None
    for label in labels:
        if normalize_label(label).lower() in POSITIVE_WORDS:
            return label
    return sorted(labels)[0]


def most_frequent_class(completions: Sequence[str], labels: Sequence[str]) -> str | None:
    """For two classes: the more frequent one in `completions` (prepare_data's suggestion, as the
    legacy tool's); a tie falls back to positive_class. None unless there are exactly two labels."""
    if len(labels) != 2:
        return None
    counts = Counter(c for c in completions if c in labels)
    first, second = (counts[label] for label in labels)
    if first == second:
        return positive_class(labels)
    return labels[0] if first > second else labels[1]


def _candidates(name: str, labels: Sequence[str]) -> list[str]:
    if name in labels:
        return [name]
    wanted = normalize_label(name)
    return [label for label in labels if normalize_label(label) == wanted]


def find_label(name: str, labels: Sequence[str]) -> str | None:
    """The label that `name` (a completion in a file, a generated text, a user's option) stands
    for: the label written exactly so, else the only one that differs from it by surrounding
    whitespace ("4" -> " 4"). None when no label, or more than one, fits."""
    found = _candidates(name, labels)
    return found[0] if len(found) == 1 else None


def match_label(name: str, labels: Sequence[str], *, what: str = "label") -> str:
    """`find_label`, for a name that must be a label (e.g. `--classification_positive_class yes`
    for the label " yes"). Raises InvalidInputError naming the labels when none or several fit."""
    found = _candidates(name, labels)
    if len(found) == 1:
        return found[0]
    if found:
        raise InvalidInputError(f"The {what} {name!r} fits several labels: {preview(found)}.",
                                hint="Give the label exactly as written, with its spaces.")
    raise InvalidInputError(f"The {what} {name!r} is not one of the labels: {preview(labels, 40)}.",
                            hint="Labels are matched ignoring surrounding spaces, so 'yes' names ' yes'.")


# --- decision rules: which label a distribution answers with -----------------------------------

DECISION_RULES = ("argmax", "median", "good_vs_bad")
"""argmax: the most probable label (exact accuracy). For ordinal labels also: median, the label
where the cumulative probability (in value order) first reaches 1/2, which minimises the expected
absolute error |pred - true|; good_vs_bad, the more probable side of the good-vs-bad cut, then the
most probable label on that side, which minimises the expected good-vs-bad error (the
minimum-expected-cost answer when crossing the cut is the only mistake that costs)."""


def check_decision_rule(rule: str, labels: Sequence[str] | None) -> str:
    """`rule` if it applies to `labels`; InvalidInputError otherwise."""
    if rule not in DECISION_RULES:
        raise InvalidInputError(f"Unknown decision rule {rule!r}.", hint=f"Use one of: {', '.join(DECISION_RULES)}.")
    if rule != "argmax" and (not labels or not is_ordinal(labels)):
        raise InvalidInputError(f"The {rule} decision rule needs ordinal labels (integers such as star ratings); "
                                f"these labels are {preview(list(labels or []))}.")
    return rule


def decide(probs, labels: Sequence[str], rule: str = "argmax", threshold: int | float | None = None):
    """Index into `labels` of each row's answer under `rule` (an int array). `probs`: [n, len(labels)]
    probabilities or log-probabilities' exp, in `labels` order; rows need not sum to 1."""
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    check_decision_rule(rule, labels)
    if rule == "argmax":
        return p.argmax(axis=1)
    p = np.clip(p, 0.0, None)
    p = p / np.where(p.sum(axis=1, keepdims=True) > 0, p.sum(axis=1, keepdims=True), 1.0)
    values = np.array(ordinal_values(labels))
    order = np.argsort(values, kind="stable")  # labels may come in any order; the rules need value order
    if rule == "median":
        cumulative = np.cumsum(p[:, order], axis=1)
        # A tiny tolerance: a row exactly at 1/2 (two equally likely neighbours) takes the lower one.
        first = (cumulative >= 0.5 - 1e-12).argmax(axis=1)
        return order[first]
    good = np.array(list(good_vs_bad(labels, threshold).values()))
    p_good = p[:, good].sum(axis=1)
    side = p_good > 0.5
    masked = np.where(side[:, None] == good[None, :], p, -1.0)
    return masked.argmax(axis=1)


# --- merging and renaming labels ----------------------------------------------------------------


def parse_merge_spec(text: str) -> dict[str, str]:
    """`A+B=C` (A and B become C) or `A=C` (a rename) as {"A": "C", "B": "C"}. Names are taken
    without surrounding whitespace; InvalidInputError for anything else."""
    sources, sep, target = str(text).rpartition("=")
    names = [normalize_label(s) for s in sources.split("+")] if sep else []
    if not sep or not normalize_label(target) or not names or not all(names):
        raise InvalidInputError(f"Cannot read the merge {text!r}.",
                                hint="Write --merge 'OLD+OTHER=NEW' (or 'OLD=NEW' to rename one label).")
    return {name: normalize_label(target) for name in names}


def check_merge_map(mapping: dict, labels: Sequence[str], *, source: str = "the merge map") -> dict[str, str]:
    """{label as written in the data: new label name} for a user's map {name: new name} over `labels`.
    Raises InvalidInputError, listing every problem at once, when a name is not one of the labels,
    a new name is empty, or the merged set would have fewer than two classes."""
    labels = list(labels)
    problems, resolved = [], {}
    for old, new in mapping.items():
        if not isinstance(old, str) or not isinstance(new, str):
            problems.append(f"{old!r}: {new!r}: both names must be text")
            continue
        if not normalize_label(new):
            problems.append(f"{old!r} is mapped to an empty name")
            continue
        found = find_label(old, labels)
        if found is None:
            problems.append(f"{old!r} is not one of the labels")
            continue
        resolved[found] = normalize_label(new)
    # A map applies in one step: with {"kitchen": "home", "home": "household"} the kitchen rows would
    # become a class still called "home" while the home rows left for "household" (QA saw a chain
    # read as kitchen -> home -> household give two classes), so a target the map renames is refused.
    for found, new in resolved.items():
        target = find_label(new, labels)
        if target is not None and target != found and target in resolved and resolved[target] != normalize_label(target):
            problems.append(f"{normalize_label(found)!r} is merged into {new!r}, which the map itself renames to "
                            f"{resolved[target]!r}: a map applies in one step, so write "
                            f"{normalize_label(found)!r}: {resolved[target]!r}")
    if problems:
        raise InvalidInputError(f"{source} cannot be applied:", problems=problems,
                                hint=f"The labels are: {preview(labels, 40)}.")
    merged = {resolved.get(label, normalize_label(label)) for label in labels}
    if len(merged) < 2:
        raise InvalidInputError(f"{source} would leave a single class ({preview(sorted(merged))}); "
                                "a classifier needs at least two.", hint="Merge fewer labels.")
    return resolved


def merged_label(label: str, resolved: dict[str, str]) -> str:
    """`label` after a map from `check_merge_map`; a completion keeps its leading space (" Dresses"
    merged into "Dresses & Skirts" becomes " Dresses & Skirts")."""
    new = resolved.get(label)
    if new is None:
        return label
    return with_leading_space(new) if has_leading_space(label) else new
