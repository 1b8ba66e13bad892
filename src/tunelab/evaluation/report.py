"""`tunelab evaluate`: score a held-out test file with a model and report every metric of
chapter 4.6.1, next to simple baselines trained on the training file.

Each test row is scored by the probability of every label (`Predictor.score_labels`, the same
numbers `tunelab complete` and the server show, calibrated by the model's temperature); the
prediction is the most probable label, or another decision rule's answer (`decision`). Ordinal
labels are also scored under every decision rule (tunelab.data.labels.DECISION_RULES), and the ECE
is reported before and after the temperature.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tunelab import textwidth
from tunelab.data.files import load_data_file
from tunelab.data.labels import (
    DECISION_RULES, check_decision_rule, decide, display_label, find_label, label_sort_key, preview,
)
from tunelab.data.readers import Example
from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.evaluation import metrics as M
from tunelab.fsutil import output_dir, write_json, write_jsonl
from tunelab.inference.adjustment import adjust
from tunelab.inference.calibration import apply_temperature
from tunelab.models.chat import example_prompt
from tunelab.store import ids

PROMPT_HEAD = 200
MAX_FREEFORM_LABELS = 200

# Keys of metrics.json that the CLI, compare and the demo rely on.
METRIC_KEYS = ("model", "accuracy", "accuracy_ci95", "good_vs_bad_accuracy", "one_off_accuracy", "mae", "qwk",
               "macro_f1", "weighted_f1", "ece", "per_class", "confusion_matrix", "labels", "n", "mean_logprob",
               "perplexity", "rows_per_second", "baselines", "ece_uncalibrated", "temperature", "decision",
               "decision_rules", "balanced_accuracy", "top3_accuracy", "rare_class_recall", "rare_class_recall_mean",
               "logit_adjustment")
RULE_KEYS = ("accuracy", "good_vs_bad_accuracy", "one_off_accuracy", "mae", "macro_f1")
ADJUSTMENT_KEYS = ("accuracy", "macro_f1", "balanced_accuracy", "top3_accuracy", "rare_class_recall_mean")


def default_out_dir(model_id: str, base: str | Path | None = None) -> Path:
    """./tunelab-report/<sanitized model id>/ (the CLI's default when --out is omitted)."""
    return Path(base or Path.cwd()) / "tunelab-report" / ids.model_dir_name(model_id)


def load_examples(ref: str | Path, store, role: str = "test") -> tuple[Path, list[Example]]:
    """A path or a file id (`file-…`), read but never uploaded; DataFileError on empty/bad files."""
    data = load_data_file(store, ref, role)
    return data.path, data.rows


def map_labels(raw: Sequence[str], labels: Sequence[str], *, model_id: str, source: str) -> list[str]:
    """Map file completions onto the model's labels (`find_label`: "4" -> " 4"). Completions that
    match no label are an error naming them and the model's labels."""
    labels = list(labels)
    # Files repeat a few distinct completions many times: match each distinct one once.
    found = {value: find_label(value, labels) for value in set(raw)}
    unseen = [value for value in raw if found[value] is None]
    if unseen:
        distinct = sorted(set(unseen), key=label_sort_key)
        raise InvalidInputError(
            f"{source} has {len(unseen)} row(s) whose completion is a label the model {model_id} never saw: "
            f"{preview(distinct)}.",
            hint=f"The model's labels are: {preview(labels, 40)}. Use files made for this model; a label it cannot "
                 "know (a category found only in the test file, say) folds into one of its labels with "
                 "`tunelab labels merge DIR --merge 'OLD=NEW' --out NEW_DIR`.")
    return [found[value] for value in raw]


def evaluate_model(model_id: str, test_path: str | Path, *, train_path: str | Path | None = None,
                   out_dir: str | Path | None = None, store=None, batch_size: int = 32, progress: bool = True,
                   threshold: int | float | None = None, predictor=None, decision: str = "argmax",
                   folders: bool = False) -> dict:
    """Evaluate `model_id` on a test file (path or file id) and return the metrics dict (the
    content of metrics.json). With `train_path`, adds majority and TF-IDF baselines trained on it.
    With `out_dir`, writes metrics.json, predictions.jsonl, confusion_matrix.png, reliability.png
    and per_class_f1.png there (the dict's "files" says where); without it nothing is written.
    `threshold`: good-vs-bad cut for ordinal labels (None: 3 for 1-5 stars, the middle of the range
    otherwise). `predictor`: an already loaded Predictor for `model_id` (skips loading). `decision`:
    the rule the headline metrics use (argmax, or for ordinal labels median / good_vs_bad); every
    rule is scored under "decision_rules" anyway. `folders`: `model_id` may also be a model folder
    tunelab wrote, as a path (the local CLI and Python API; never the server)."""
    from tunelab.store import Store

    if batch_size < 1:
        raise InvalidInputError(f"--batch-size must be at least 1, got {batch_size}.")
    store = store or Store()
    if out_dir is not None:
        output_dir(out_dir, create=False)  # before the scoring, not after it
    test_file, test = load_examples(test_path, store, "test")
    train_file, train = load_examples(train_path, store, "training") if train_path is not None else (None, None)

    record = store.find_model_or_folder(model_id) if folders else store.find_model(model_id)
    if record is None and ids.MODEL_ID.match(model_id or ""):
        raise NotFoundError(f"No such fine-tuned model: {model_id}.", hint="List models with `tunelab models list`.")
    if record is not None and record.labels:
        labels = list(record.labels)
        labels_from = "model"
        gold = map_labels([e.completion for e in test], labels, model_id=model_id, source=str(test_file))
    else:
        # A free-form model (or a base model): score the labels the data uses.
        pool = [e.completion for e in test] + [e.completion for e in (train or [])]
        labels = sorted(set(pool), key=label_sort_key)
        labels_from = "data"
        if len(labels) > MAX_FREEFORM_LABELS:
            raise InvalidInputError(
                f"{model_id} has no fixed labels and {test_file} has {len(labels)} distinct completions; "
                "evaluate scores classification data (a small set of labels).")
        gold = [e.completion for e in test]
    train_gold = (map_labels([e.completion for e in train], labels, model_id=model_id, source=str(train_file))
                  if train is not None else None)

    if predictor is None:
        from tunelab.inference.predictor import load_predictor

        predictor = load_predictor(model_id, store, folders=folders)
    check_decision_rule(decision, labels)
    # Chat rows are read the way the model learnt its messages (tunelab.models.chat).
    fmt = getattr(getattr(predictor, "meta", None), "chat_format", None)
    prompts = [example_prompt(e, predictor.tokenizer, fmt) for e in test] if fmt else [e.prompt for e in test]
    # The predictor's own temperature (what it applies); the models row's for predictors without one.
    temperature = getattr(predictor, "temperature", None)
    if temperature is None:
        temperature = ((record.meta or {}).get("temperature") if record is not None else None) or 1.0
    temperature = float(temperature)
    calibrated = temperature != 1.0 and labels_from == "model"
    prior = getattr(predictor, "class_prior", None) if labels_from == "model" else None
    tau = float(getattr(predictor, "logit_adjustment", 0.0) or 0.0) if prior is not None else 0.0
    # The model's own numbers are calibrated; the raw ones (T = 1) give the ECE before calibration.
    raw, seconds = score_rows(predictor, prompts, labels if labels_from == "data" else None,
                              batch_size=batch_size, progress=progress, desc=f"Scoring {model_id}",
                              calibrated=False if (calibrated or tau) else None)
    unadjusted = apply_temperature(raw, temperature) if calibrated else raw
    logp = adjust(unadjusted, prior, tau)  # what the model answers with: the Predictor applies both
    # A classifier answers a label in one step (README: each label counts as one token), however many
    # tokens its name has: "perplexity per gold token" is then exp(-mean log-prob).
    count_tokens = predictor.count_tokens if str(getattr(predictor, "method", "")) != "classifier" else (lambda label: 1)
    report, predictions = build_report(model_id, test, gold, labels, logp, count_tokens,
                                       threshold=threshold, decision=decision, class_counts=prior)
    report["logit_adjustment"] = (adjustment_metrics(gold, unadjusted, labels, prior, tau, threshold)
                                  if prior is not None else None)
    report["temperature"] = temperature if calibrated else 1.0
    report["ece_uncalibrated"] = (M.calibration([labels.index(g) for g in gold], np.exp(raw))["ece"]
                                  if calibrated else report["ece"])
    report.update(
        test_file=str(test_file), train_file=str(train_file) if train_file else None,
        method=predictor.method, base_model=(record.base_model if record else predictor.base_model),
        labels_from=labels_from, scoring_seconds=seconds,
        rows_per_second=(len(test) / seconds) if seconds > 0 else None, batch_size=batch_size,
    )
    report["baselines"] = None
    if train is not None:
        from tunelab.evaluation.baselines import run_baselines

        report["baselines"] = run_baselines([e.prompt for e in train], train_gold, prompts, gold, labels,
                                            threshold=report["threshold"])
    report["out_dir"] = None
    report["files"] = {}
    if out_dir is not None:
        write_report(report, predictions, out_dir)
    return report


def score_rows(predictor, prompts: list[str], labels: list[str] | None, *, batch_size: int = 32,
               progress: bool = True, desc: str = "Scoring", calibrated: bool | None = None) -> tuple[np.ndarray, float]:
    """log P(label | prompt) for every row, batched, with a tqdm bar on stderr. Returns (logp, seconds).
    `calibrated=False` asks for the scores before the model's temperature (None: the predictor's default)."""
    extra = {} if calibrated is None else {"calibrated": calibrated}
    from tunelab.console import tqdm_class

    tqdm = tqdm_class()
    with tqdm(total=len(prompts), desc=desc, unit="row", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        start = time.perf_counter()
        logp = predictor.score_labels(prompts, labels=labels, batch_size=batch_size, progress=bar.update, **extra)
        seconds = time.perf_counter() - start
    return np.asarray(logp, dtype=np.float64), seconds


def adjustment_metrics(gold: Sequence[str], logp: np.ndarray, labels: Sequence[str], prior: Sequence[float],
                       tau: float, threshold=None) -> dict:
    """Argmax and logit-adjusted decisions side by side, from the same (calibrated) scores: the
    model's tuned tau, or tau = 1 (the balanced-error correction) for a model without one."""
    labels = list(labels)
    shown = tau if tau else 1.0
    out = {"tau": tau, "tau_shown": shown, "tuned": bool(tau)}
    for name, scores in (("argmax", logp), ("adjusted", adjust(logp, prior, shown))):
        pred = [labels[i] for i in np.asarray(scores).argmax(axis=1)]
        metrics = M.classification_report(gold, pred, np.exp(scores), labels, threshold=threshold, class_counts=prior)
        out[name] = {k: metrics.get(k) for k in ADJUSTMENT_KEYS}
    return out


def build_report(model_id: str, test: Sequence[Example], gold: Sequence[str], labels: Sequence[str], logp: np.ndarray,
                 count_tokens, *, threshold=None, decision: str = "argmax",
                 class_counts: Sequence[float] | None = None) -> tuple[dict, list[dict]]:
    """Metrics and per-row predictions from a [n, n_labels] matrix of label log-probabilities;
    predictions by the `decision` rule, and for ordinal labels every rule's metrics too."""
    labels = list(labels)
    probs = np.exp(logp)
    pred = [labels[i] for i in decide(probs, labels, decision, threshold)]
    index = {label: i for i, label in enumerate(labels)}
    gold_idx = np.array([index[g] for g in gold])
    gold_lp = logp[np.arange(len(gold)), gold_idx]
    label_tokens = {label: max(1, int(count_tokens(label))) for label in labels}
    report = {"model": model_id}
    report.update(M.classification_report(gold, pred, probs, labels, threshold=threshold, class_counts=class_counts))
    report.update(M.gold_logprob_summary(gold_lp, [label_tokens[g] for g in gold]))
    report["decision"] = decision
    report["decision_rules"] = decision_rule_metrics(gold, probs, labels, report.get("threshold"))
    predictions = [
        {"line": ex.line, "prompt": ex.prompt[:PROMPT_HEAD], "gold": g, "pred": p, "correct": g == p,
         "gold_logprob": _round(lp), "probs": {label: _round(probs[i, j], 6) for j, label in enumerate(labels)}}
        for i, (ex, g, p, lp) in enumerate(zip(test, gold, pred, gold_lp))
    ]
    return report, predictions


def decision_rule_metrics(gold: Sequence[str], probs: np.ndarray, labels: Sequence[str], threshold=None) -> dict | None:
    """{rule: exact / good-vs-bad / one-off / MAE / macro-F1} for every decision rule, for ordinal
    labels (None otherwise): how much the answer rule matters, from the same probabilities."""
    from tunelab.data.labels import is_ordinal

    labels = list(labels)
    if not is_ordinal(labels):
        return None
    out = {}
    for rule in DECISION_RULES:
        pred = [labels[i] for i in decide(probs, labels, rule, threshold)]
        metrics = M.classification_report(gold, pred, None, labels, threshold=threshold)
        out[rule] = {k: metrics.get(k) for k in RULE_KEYS}
    return out


def write_report(report: dict, predictions: list[dict] | None, out_dir: str | Path) -> dict:
    """metrics.json, predictions.jsonl and the three PNGs; records the paths in report["files"]."""
    from tunelab.evaluation import plots

    out = output_dir(out_dir)
    # metrics.json, written last, says the report is complete: an earlier one goes first, so that a
    # run killed midway does not leave it beside new predictions.
    (out / "metrics.json").unlink(missing_ok=True)
    files = {}
    report["out_dir"] = str(out)
    if predictions is not None:
        write_jsonl(out / "predictions.jsonl", predictions)
        files["predictions"] = str(out / "predictions.jsonl")
    files["confusion_matrix"] = str(plots.plot_confusion_matrix(
        report["confusion_matrix"], report["labels"], out / "confusion_matrix.png",
        title=f"Confusion matrix\n{report['model']}"))
    if report.get("calibration"):
        files["reliability"] = str(plots.plot_reliability(report["calibration"], out / "reliability.png",
                                                          title=f"Reliability diagram\n{report['model']}"))
    predicted = [sum(column) for column in zip(*report["confusion_matrix"])]  # how often each label was predicted
    files["per_class_f1"] = str(plots.plot_per_class_f1(report["per_class"], out / "per_class_f1.png",
                                                        title=f"F1 per class\n{report['model']}", predicted=predicted))
    files["metrics"] = str(out / "metrics.json")
    report["files"] = files
    write_json(out / "metrics.json", report)
    return files


# -- terminal output -----------------------------------------------------------------------------

def format_cell(value, kind: str = "f3") -> str:
    """One cell of a report or comparison table: f1/f2/f3 decimals, int, duration or usd; — when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind in ("f1", "f2", "f3"):
        return f"{value:.{kind[1]}f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "duration":
        return _duration(value)
    if kind == "usd":
        return f"${value:.4f}" if value < 1 else f"${value:,.2f}"
    return str(value)

def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {s:02d}s" if hours else f"{minutes}m {s:02d}s"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain columns: first left-aligned, the others right-aligned."""
    widths = [max(textwidth.columns(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for j, row in enumerate([header, *rows]):
        cells = [(textwidth.ljust if i == 0 else textwidth.rjust)(str(c), widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def headline_rows(report: dict) -> list[tuple[str, str, str]]:
    """(title, metric key, format) of the summary rows, ordinal ones only for ordinal labels."""
    rows = [("accuracy", "accuracy", "f3")]
    if report.get("ordinal"):
        t = report.get("threshold")
        rows += [(f"good-vs-bad (<= {t} | > {t})", "good_vs_bad_accuracy", "f3"),
                 ("one-off (|pred - true| <= 1)", "one_off_accuracy", "f3"),
                 ("MAE", "mae", "f3"), ("QWK (quadratic kappa)", "qwk", "f3")]
    rows += [("macro F1", "macro_f1", "f3"), ("weighted F1", "weighted_f1", "f3")]
    if not report.get("ordinal") and len(report.get("labels") or []) > 3:  # many categories: the imbalance view
        rows += [("balanced accuracy", "balanced_accuracy", "f3"), ("top-3 accuracy", "top3_accuracy", "f3"),
                 (f"recall, {len(report.get('rare_class_recall') or {})} rarest classes", "rare_class_recall_mean", "f3")]
    rows.append((f"ECE ({M.ECE_BINS} bins)", "ece", "f3"))
    if report.get("temperature") not in (None, 1.0):
        rows.append((f"ECE before calibration (T={report['temperature']:.2f})", "ece_uncalibrated", "f3"))
    return rows


def format_report(report: dict) -> str:
    from tunelab.evaluation.baselines import BASELINES, TITLES

    baselines = report.get("baselines") or {}
    names = [b for b in BASELINES if b in baselines]
    labels = report["labels"]
    kind = f"ordinal, good-vs-bad cut at {report['threshold']}" if report.get("ordinal") else "categorical"
    out = [f"Model:     {report['model']}",
           f"Test file: {report.get('test_file')} ({report['n']} rows)",
           f"Labels:    {len(labels)} ({kind}): {' '.join(display_label(l) for l in labels[:12])}"
           + (" …" if len(labels) > 12 else "")]
    if report.get("train_file"):
        out.append(f"Baselines: trained on {report['train_file']}")
    out.append("")
    header = ["metric", "model"] + [TITLES[b] for b in names]
    rows = []
    for title, key, fmt in headline_rows(report):
        rows.append([title, format_cell(report.get(key), fmt)]
                    + [format_cell(baselines[b].get(key), fmt) for b in names])
        if key == "accuracy":
            cis = [report["accuracy_ci95"]] + [baselines[b]["accuracy_ci95"] for b in names]
            rows.append(["  95% CI (bootstrap)"] + [f"[{format_cell(lo)}, {format_cell(hi)}]" for lo, hi in cis])
    blank = [""] * len(names)
    rows.append(["mean log-prob of gold", format_cell(report.get("mean_logprob"))] + blank)
    rows.append(["perplexity per gold token", format_cell(report.get("perplexity"))] + blank)
    rows.append(["throughput (rows/s)", format_cell(report.get("rows_per_second"), "f1")] + blank)
    out.append(format_table(header, rows))

    rules = report.get("decision_rules")
    if rules:
        out += ["", f"Decision rules (which label answers; headline rows use {report.get('decision', 'argmax')}):"]
        out.append(format_table(["rule", "accuracy", "good-vs-bad", "one-off", "MAE", "macro F1"],
                                [[rule] + [format_cell(m.get(k)) for k in RULE_KEYS] for rule, m in rules.items()]))
    adjustment = report.get("logit_adjustment")
    if adjustment and len(labels) > 2:
        tau = adjustment["tau_shown"]
        how = "tuned on the validation file, applied to the answers" if adjustment["tuned"] else "not tuned: shown at 1"
        out += ["", f"Logit adjustment (tau {tau:.1f}, {how}):"]
        keys = [("accuracy", "accuracy"), ("macro F1", "macro_f1"), ("balanced accuracy", "balanced_accuracy"),
                ("top-3 accuracy", "top3_accuracy"), ("rare-class recall", "rare_class_recall_mean")]
        out.append(format_table(["decision"] + [t for t, _ in keys],
                                [[name] + [format_cell(adjustment[key].get(k)) for _, k in keys]
                                 for name, key in (("argmax", "argmax"), (f"adjusted (tau {tau:.1f})", "adjusted"))]))
    out += ["", "Per class:"]
    per = report["per_class"]
    out.append(format_table(["label", "precision", "recall", "F1", "support"],
                            [[display_label(l), format_cell(per[l]["precision"]), format_cell(per[l]["recall"]),
                              format_cell(per[l]["f1"]), str(per[l]["support"])] for l in labels]))
    if len(labels) <= 12:
        out += ["", "Confusion matrix (rows: true, columns: predicted):"]
        names_ = [display_label(l) for l in labels]
        matrix = report["confusion_matrix"]
        out.append(format_table(["true \\ pred"] + names_,
                                [[names_[i]] + [str(v) for v in row] for i, row in enumerate(matrix)]))
    return "\n".join(out)


def _round(x, digits: int = 6):
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None
