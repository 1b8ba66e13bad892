"""The one-line verdict under `tunelab evaluate` and `tunelab compare`: does a model beat the two
baselines (always the majority class; TF-IDF + logistic regression) on accuracy, in words.

A model "beats" a baseline when the baseline's accuracy lies below the model's 95 % bootstrap
interval; above the baseline but inside the interval it is "not clearly better" (on 200 test rows,
a few points are noise); at or below it, it is "no better".
"""

from __future__ import annotations

from tunelab.data.labels import display_label
from tunelab.evaluation.baselines import BASELINES

NAMES = {"majority": "the majority class", "tfidf": "TF-IDF"}

BEATS, UNCLEAR, NO_BETTER = "beats", "not clearly better than", "no better than"


def judge(report: dict, baseline: dict) -> str:
    """BEATS, UNCLEAR or NO_BETTER for one baseline."""
    accuracy, other = report["accuracy"], baseline["accuracy"]
    if accuracy <= other + 1e-9:
        return NO_BETTER
    low = (report.get("accuracy_ci95") or [None])[0]
    return UNCLEAR if low is not None and low <= other else BEATS


def verdict(report: dict, baselines: dict | None = None, *, name: str = "The model") -> str | None:
    """"Verdict: ..." for one evaluate report, against `baselines` (default: the report's own);
    None without baselines. `name` starts the sentence."""
    baselines = baselines if baselines is not None else report.get("baselines")
    present = [b for b in BASELINES if b in (baselines or {})]
    if not present:
        return None
    judged = [(judge(report, baselines[b]),
               f"{NAMES[b]} ({_label(baselines[b])}{report['accuracy']:.3f} vs {baselines[b]['accuracy']:.3f})")
              for b in present]
    won = [what for kind, what in judged if kind == BEATS]
    lost = [f"{kind} {what}" for kind, what in judged if kind != BEATS]
    if not lost:
        text = f"beats {' and '.join(won)}"
    elif not won:
        text = "is " + " and ".join(lost)
    else:
        text = f"beats {' and '.join(won)} but is {' and '.join(lost)}"
    note = " (within the model's 95% interval)" if any(kind == UNCLEAR for kind, _ in judged) else ""
    return f"Verdict: {name} {text} on accuracy{note}.{_macro_f1(report, baselines)}"


def _macro_f1(report: dict, baselines: dict) -> str:
    """For categories (three or more, not ordinal) also macro F1 against TF-IDF: with imbalanced
    classes accuracy follows the big ones, and the case study's levers (class weights, logit
    adjustment) trade a point of it for rare-class recall. On 31 Amazon categories a model at
    0.706 vs TF-IDF's 0.712 accuracy was told it was 'no better than TF-IDF' while its macro F1 was
    0.547 vs 0.493 (QA). The numbers only: macro F1 has no bootstrap interval here."""
    tfidf = (baselines or {}).get("tfidf") or {}
    mine, other = report.get("macro_f1"), tfidf.get("macro_f1")
    if report.get("ordinal") is not False or len(report.get("labels") or []) < 3 or mine is None or other is None:
        return ""
    side = "higher than" if mine > other + 5e-4 else "lower than" if mine < other - 5e-4 else "the same as"
    return f" Macro F1, every class counted alike: {mine:.3f}, {side} TF-IDF's {other:.3f}."


def _label(baseline: dict) -> str:
    label = baseline.get("label")
    if label is None:
        return ""
    text = str(label).strip(" ")
    return f"always answering {display_label(text) if text else display_label(label)}: "
