"""`tunelab compare`: Table 4.1 of the chapter — several models side by side on one test file, with
what their training cost.

Training cost sums over a model's lineage (the job that made it and the jobs of its parents, as
continued fine-tuning is how the chapter's "4 epochs" model came about). Compute is what this
machine spent: CPU-seconds of the training process on CPU, GPU-seconds (wall time on the GPU)
on a GPU. The ada-equivalent price is only a reference point: what the same trained tokens would
have cost at OpenAI's published legacy ada fine-tuning price.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.evaluation.baselines import BASELINES, TITLES
from tunelab.evaluation.metrics import RARE_CLASSES
from tunelab.evaluation.report import evaluate_model, format_cell, load_examples, map_labels
from tunelab.fsutil import atomic_open, output_dir, write_json
from tunelab.store import ids
from tunelab.training.plan import JobStats

ADA_TRAINING_USD_PER_1K_TOKENS = 0.0004
ADA_PRICE_TITLE = "ada-equivalent price (reference)"

# (row title, key in an evaluate report, format). The ordinal rows are left out for categorical labels.
METRIC_ROWS = [
    ("accuracy", "accuracy", "f3"),
    ("good-vs-bad accuracy", "good_vs_bad_accuracy", "f3"),
    ("one-off accuracy", "one_off_accuracy", "f3"),
    ("macro F1", "macro_f1", "f3"),
    ("MAE", "mae", "f3"),
    ("ECE", "ece", "f3"),
    ("ECE before calibration", "ece_uncalibrated", "f3"),
]
ORDINAL_KEYS = {"good_vs_bad_accuracy", "one_off_accuracy", "mae"}
# For ordinal labels: the same probabilities answered by the other decision rules.
RULE_ROWS = [("accuracy", "accuracy"), ("good-vs-bad", "good_vs_bad_accuracy"), ("one-off", "one_off_accuracy"),
             ("MAE", "mae")]
# Categorical labels with more than three classes (the category case study, §4.6.4).
IMBALANCE_ROWS = [("balanced accuracy", "balanced_accuracy", "f3"), ("top-3 accuracy", "top3_accuracy", "f3"),
                  ("recall of the 10 rarest classes (mean)", "rare_class_recall_mean", "f3")]
# The same scores answered by argmax and after logit adjustment (the model's tau, or 1 when it has none).
ADJUSTMENT_ROWS = [("accuracy", "accuracy"), ("macro F1", "macro_f1"), ("balanced accuracy", "balanced_accuracy"),
                   ("rare-class recall", "rare_class_recall_mean")]
TRAINING_ROWS = [
    ("epochs", "epochs", "int"),
    # Sums over every epoch of the model's lineage (a 300-row file, 1 + 3 epochs: 1,200 examples).
    ("examples trained (all epochs of the lineage)", "trained_examples", "int"),
    ("tokens trained (all epochs of the lineage)", "trained_tokens", "int"),
    ("training wall time (lineage)", "train_seconds", "duration"),
    ("compute (lineage)", "compute", "text"),
    (ADA_PRICE_TITLE, "ada_equivalent_usd", "usd"),
]
# Metrics drawn in compare.png (all on a 0-1 scale).
CHART_METRICS = [("accuracy", "accuracy"), ("good-vs-bad", "good_vs_bad_accuracy"),
                 ("one-off", "one_off_accuracy"), ("macro F1", "macro_f1"), ("ECE (lower is better)", "ece")]


def training_summary(model_id: str, store) -> dict:
    """Epochs and training cost of a model, summed over its lineage (model → parent → …)."""
    record = store.find_model(model_id)
    if record is None:
        return {"epochs": 0, "lineage": [], "jobs": [], "trained_examples": None, "trained_tokens": None,
                "train_seconds": None, "cpu_seconds": None, "gpu_seconds": None, "devices": [],
                "compute": "—", "ada_equivalent_usd": None}
    lineage, jobs = [], []
    seen = set()
    current = record
    while current is not None and current.id not in seen:
        seen.add(current.id)
        lineage.append(current.id)
        if current.job_id:
            try:
                jobs.append(store.get_job(current.job_id))
            except Exception:  # a deleted job: its cost is unknown, the rest still adds up
                pass
        current = store.find_model(current.parent_id) if current.parent_id else None
    # An epoch checkpoint (`…:ckpt-step-N`) cost its job only the steps up to it, not the epochs after.
    share = {j.id: 1.0 for j in jobs}
    counted = {j.id: (j.trained_examples or 0, j.trained_tokens or 0) for j in jobs}
    match = ids.CHECKPOINT_MODEL.match(record.id)
    if match and jobs and jobs[0].id == record.job_id:
        job = jobs[0]
        ckpt = next((c for c in store.list_checkpoints(job.id) if c.step == int(match["step"])), None)
        done = (ckpt.metrics or {}).get("elapsed_examples") if ckpt else None
        if done is not None and job.trained_examples:
            share[job.id] = min(1.0, done / job.trained_examples)
            counted[job.id] = (done, (ckpt.metrics or {}).get("elapsed_tokens") or 0)
    examples = sum(counted[j.id][0] for j in jobs)
    tokens = sum(counted[j.id][1] for j in jobs)
    wall = sum((j.train_seconds or 0.0) * share[j.id] for j in jobs)
    cpu = gpu = 0.0
    devices = []
    for job in jobs:
        stats = JobStats.from_job(job)
        dev = stats.device or "cpu"
        devices.append(dev)
        if dev.startswith(("cuda", "mps", "xpu")):
            gpu += float(job.train_seconds or 0.0) * share[job.id]
        else:
            cpu += float(stats.cpu_seconds or job.train_seconds or 0.0) * share[job.id]
    parts = []
    if cpu:
        parts.append(f"{cpu:,.1f} CPU-s")
    if gpu:
        parts.append(f"{gpu:,.1f} GPU-s")
    return {
        "epochs": record.cumulative_epochs, "lineage": lineage, "jobs": [j.id for j in jobs],
        "trained_examples": examples if jobs else None, "trained_tokens": tokens if jobs else None,
        "train_seconds": wall if jobs else None, "cpu_seconds": cpu if jobs else None,
        "gpu_seconds": gpu if jobs else None, "devices": sorted(set(devices)),
        "compute": " + ".join(parts) if parts else "—",
        "ada_equivalent_usd": tokens / 1000 * ADA_TRAINING_USD_PER_1K_TOKENS if jobs else None,
    }


def compare_models(model_ids: Sequence[str], test_path: str | Path, *, train_path: str | Path | None = None,
                   out_dir: str | Path | None = None, store=None, batch_size: int = 32, progress: bool = True,
                   threshold: int | float | None = None, reports: dict[str, dict] | None = None,
                   names: Mapping[str, str] | None = None, folders: bool = False) -> dict:
    """Evaluate each model once (or reuse `reports`, {model_id: evaluate_model result}) and build
    Table 4.1. Baselines (majority, tf-idf) are trained once on `train_path`. With `out_dir`,
    writes compare.md, compare.csv, compare.png and compare.json there, and each model's own
    evaluate report under out_dir/<sanitized model id>/."""
    from tunelab.store import Store

    model_ids = list(model_ids)
    if not model_ids:
        raise InvalidInputError("Give at least one model to compare.")
    dupes = sorted({m for m in model_ids if model_ids.count(m) > 1})
    if dupes:
        raise InvalidInputError(f"Model(s) given more than once: {', '.join(dupes)}.")
    store = store or Store()
    out = output_dir(out_dir, create=False) if out_dir is not None else None  # before the scoring
    # Check the data files before loading any model.
    test_file, test = load_examples(test_path, store, "test")
    train = load_examples(train_path, store, "training")[1] if train_path is not None else None
    for model_id in model_ids:
        found = store.find_model_or_folder(model_id) if folders else store.find_model(model_id)
        if found is None and ids.MODEL_ID.match(model_id):
            raise NotFoundError(f"No such fine-tuned model: {model_id}.",
                                hint="List models with `tunelab models list`.")
        if found is None:  # a base model's name, a hub id: a typo failed only after the models before it were scored
            from tunelab.models.registry import resolve_model

            resolve_model(model_id, store, materialize=False)

    reports = dict(reports or {})
    for model_id in model_ids:
        if model_id not in reports:
            reports[model_id] = evaluate_model(
                model_id, test_file, out_dir=(out / ids.model_dir_name(model_id)) if out else None, store=store,
                batch_size=batch_size, progress=progress, threshold=threshold, folders=folders)
    first = reports[model_ids[0]]

    baselines = None
    if train is not None:
        from tunelab.evaluation.baselines import run_baselines

        labels = first["labels"]
        gold = map_labels([e.completion for e in test], labels, model_id=model_ids[0], source=str(test_file))
        train_gold = map_labels([e.completion for e in train], labels, model_id=model_ids[0], source=str(train_path))
        baselines = run_baselines([e.prompt for e in train], train_gold, [e.prompt for e in test], gold, labels,
                                  threshold=first.get("threshold"))

    training = {m: training_summary(m, store) for m in model_ids}
    columns = list(model_ids) + ([TITLES[b] for b in BASELINES] if baselines else [])
    rows = []
    for title, key, fmt in METRIC_ROWS:
        values = {m: reports[m].get(key) for m in model_ids}
        if baselines:
            values.update({TITLES[b]: baselines[b].get(key) for b in BASELINES})
        if key in ORDINAL_KEYS and all(v is None for v in values.values()):
            continue  # categories: no good-vs-bad, one-off or MAE to show
        rows.append({"metric": title, "key": key, "format": fmt, "values": values})
    if not first.get("ordinal") and len(first["labels"]) > 3:  # many categories: the imbalance view
        for title, key, fmt in IMBALANCE_ROWS:
            values = {m: reports[m].get(key) for m in model_ids}
            if baselines:
                values.update({TITLES[b]: baselines[b].get(key) for b in BASELINES})
            if key == "rare_class_recall_mean" and len(first["labels"]) <= RARE_CLASSES:
                title = f"recall of all {len(first['labels'])} classes (mean)"  # no fewer rarest ones to pick
            rows.append({"metric": title, "key": key, "format": fmt, "values": values})
        if any(reports[m].get("logit_adjustment") for m in model_ids):
            for side in ("argmax", "adjusted"):
                for title, key in ADJUSTMENT_ROWS:
                    values = {m: ((reports[m].get("logit_adjustment") or {}).get(side) or {}).get(key)
                              for m in model_ids}
                    if baselines:
                        values.update({TITLES[b]: None for b in BASELINES})
                    rows.append({"metric": f"{title} ({'argmax' if side == 'argmax' else 'logit-adjusted'})",
                                 "key": f"{side}/{key}", "format": "f3", "values": values})
    if any(reports[m].get("decision_rules") for m in model_ids):
        for rule in ("median", "good_vs_bad"):
            for title, key in RULE_ROWS:
                values = {m: ((reports[m].get("decision_rules") or {}).get(rule) or {}).get(key) for m in model_ids}
                if baselines:
                    values.update({TITLES[b]: None for b in BASELINES})
                rows.append({"metric": f"{title} ({rule.replace('_', '-')} rule)", "key": f"{rule}/{key}",
                             "format": "f3", "values": values})
    for title, key, fmt in TRAINING_ROWS:
        values = {m: training[m].get(key) for m in model_ids}
        if baselines:
            values.update({TITLES[b]: None for b in BASELINES})
        rows.append({"metric": title, "key": key, "format": fmt, "values": values})

    result = {
        "models": model_ids, "columns": columns, "rows": rows, "test_file": str(test_file),
        "train_file": str(train_path) if train_path is not None else None, "n": first["n"],
        "labels": first["labels"], "threshold": first.get("threshold"), "baselines": baselines,
        "training": training, "reports": reports, "ada_usd_per_1k_tokens": ADA_TRAINING_USD_PER_1K_TOKENS,
    }
    result["names"] = display_names(model_ids, names)
    result["markdown"] = to_markdown(result)
    result["out_dir"] = None
    result["files"] = {}
    if out is not None:
        write_compare(result, out)
    return result


def display_names(model_ids: Sequence[str], names: Mapping[str, str] | None) -> dict[str, str]:
    """{model id: what the table header and the chart legend call it}: the caller's names (e.g.
    "1 epoch, unshuffled"), else the id. Names must be for compared models and distinct."""
    names = {m: str(n).strip() for m, n in (names or {}).items() if n is not None and str(n).strip()}
    unknown = sorted(set(names) - set(model_ids))
    if unknown:
        raise InvalidInputError(f"Names given for models that are not compared: {', '.join(unknown)}.")
    shown = {m: names.get(m, m) for m in model_ids}
    clashes = sorted({n for n in shown.values() if list(shown.values()).count(n) > 1 or n in TITLES.values()})
    if clashes:
        raise InvalidInputError(f"Each model needs its own name, distinct from the baselines': {', '.join(clashes)}.")
    return shown


def to_markdown(result: dict) -> str:
    from tunelab.evaluation.verdict import verdict

    columns = result["columns"]
    names = result.get("names") or {}
    lines = ["| metric | " + " | ".join(names.get(c, c).replace("|", "\\|") for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for row in result["rows"]:
        cells = [format_cell(row["values"].get(c), row["format"]) for c in columns]
        lines.append(f"| {row['metric']} | " + " | ".join(cells) + " |")
    verdicts = [verdict(result["reports"][m], result.get("baselines"),
                        name=f"{names[m]} ({m})" if names.get(m, m) != m else m)
                for m in result["models"] if m in (result.get("reports") or {})]
    verdicts = [v for v in verdicts if v]
    notes = [f"Test file: {result['test_file']} ({result['n']} rows)."]
    renamed = [f"{names[m]} = {m}" for m in result["models"] if names.get(m, m) != m]
    if renamed:
        notes.append("Columns: " + "; ".join(renamed) + ".")
    if result.get("threshold") is not None:
        t = result["threshold"]
        notes.append(f"Good-vs-bad: prediction and truth both <= {t} or both > {t}; one-off: |pred - true| <= 1.")
    if result.get("train_file"):
        notes.append(f"Baselines trained on {result['train_file']}: majority class, "
                     "TF-IDF (1-2 grams) + logistic regression.")
    notes.append("Training cost sums the model's lineage (continued fine-tunes include their parents). "
                 f"{ADA_PRICE_TITLE}: the trained tokens at OpenAI's published legacy ada fine-tuning price, "
                 f"${ADA_TRAINING_USD_PER_1K_TOKENS} per 1K tokens, for reference only; nothing was billed.")
    return ("\n".join(lines) + "\n\n" + "".join(f"{v}\n" for v in verdicts) + ("\n" if verdicts else "")
            + "\n".join(f"- {n}" for n in notes) + "\n")


def to_csv(result: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["metric", *result["columns"]])
    for row in result["rows"]:
        cells = []
        for c in result["columns"]:
            v = row["values"].get(c)
            cells.append("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v))
        unit = {"duration": " (s)", "usd": " (USD)"}.get(row["format"], "")
        writer.writerow([row["metric"] + unit, *cells])
    return buf.getvalue()


def write_compare(result: dict, out_dir: str | Path) -> dict:
    from tunelab.evaluation.plots import plot_grouped_bars

    out = output_dir(out_dir)
    (out / "compare.json").unlink(missing_ok=True)  # written last: an earlier one must not vouch for new files
    with atomic_open(out / "compare.md") as fh:
        fh.write(result["markdown"])
    with atomic_open(out / "compare.csv") as fh:
        fh.write(to_csv(result))
    by_key = {r["key"]: r for r in result["rows"]}
    metrics = [(title, key) for title, key in CHART_METRICS
               if key in by_key and any(by_key[key]["values"].get(c) is not None for c in result["columns"])]
    names = result.get("names") or {}
    legend = {c: names.get(c, c) if c in result["models"] else f"{c} (baseline)" for c in result["columns"]}
    series = {legend[c]: [by_key[key]["values"].get(c) for _, key in metrics] for c in result["columns"]}
    plot_grouped_bars([t for t, _ in metrics], series, out / "compare.png",
                      title=f"Models on {Path(result['test_file']).name} ({result['n']} rows)",
                      muted=[legend[c] for c in result["columns"] if c not in result["models"]])
    files = {"markdown": str(out / "compare.md"), "csv": str(out / "compare.csv"), "chart": str(out / "compare.png"),
             "json": str(out / "compare.json")}
    result["out_dir"] = str(out)
    result["files"] = files
    write_json(out / "compare.json", {k: v for k, v in result.items() if k not in ("reports", "markdown")})
    return files
