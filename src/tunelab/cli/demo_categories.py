"""`tunelab demo --case categories`: the chapter's second case study (§4.6.4) on the bundled
clothing reviews' `Class Name`, many imbalanced and overlapping categories, one lever per step:

1. build the dataset, merging the classes too rare to split (one review each) into a related one;
   inspect it: counts, imbalance, the most confusable pairs and a suggested merge map;
2. fine-tune with plain cross-entropy (post-hoc logit adjustment tuned on validation);
3. fine-tune with class weights;  4. with the logit-adjusted loss;
5. drop the most suspicious training labels (`labels issues`, cleanlab) and fine-tune again;
6. merge the suggested confusable classes and fine-tune again;
7. one table (accuracy, macro-F1, balanced accuracy, rare-class recall, top-3, TF-IDF row) and the
   confusion matrices before and after merging.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

from tunelab.errors import InvalidInputError, JobFailedError

SIZES = {"train_size": 800, "val_size": 300, "test_size": 1000}
"""Quick defaults: five fine-tunes of 2 epochs, about 6-8 minutes end to end on a 2-core CPU with
native bf16 (README, the case study); --full uses the canonical split (15.8k training rows)."""
TOO_RARE_TO_SPLIT = {"Chemises": "Intimates", "Casual bottoms": "Pants"}
"""The bundled `Class Name` has one review of each: no split can hold them (refine the problem)."""
DROP_SHARE = 0.03
"""Share of the training rows the cleaning step drops: the most suspicious by cleanlab's score."""
COLUMNS = [("accuracy", "accuracy"), ("macro F1", "macro_f1"), ("balanced acc.", "balanced_accuracy"),
           ("rare-class recall", "rare_class_recall_mean"), ("top-3 acc.", "top3_accuracy")]


def run_categories(args) -> int:
    from tunelab.data.builder import build_dataset
    from tunelab.data.label_maps import merge_dataset
    from tunelab.evaluation.label_audit import RARE_COUNT
    from tunelab.evaluation.label_report import (
        acted_on, find_label_issues, inspect_labels, write_inspect_report, write_issues,
    )
    from tunelab.evaluation.report import evaluate_model
    from tunelab.jobs.progress import interactive
    from tunelab.store import Store

    started = time.monotonic()
    out = Path(args.out or f"tunelab-report/demo-categories-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    sizes = {k: None for k in SIZES} if args.full else {k: getattr(args, k) or v for k, v in SIZES.items()}
    store = Store()
    epochs = args.epochs

    _title("1. Build `Class Name` from the bundled clothing reviews and inspect the label set")
    data = build_dataset("clothing-reviews", out_dir=out / "data", preset="clothing-class", seed=args.seed,
                         merge=TOO_RARE_TO_SPLIT, **sizes)
    print(f"   {len(data.labels)} classes (one-review classes merged: "
          + ", ".join(f"{a} -> {b}" for a, b in TOO_RARE_TO_SPLIT.items()) + f"); train {data.counts['train']}, "
          f"validation {data.counts['valid']}, test {data.counts['test']} rows")
    report = inspect_labels(data.paths["train"], valid_path=data.paths["valid"], seed=args.seed)
    write_inspect_report(report, out / "inspect")
    train_counts = report["counts"]["train"]
    largest = max(train_counts, key=train_counts.get)
    print(f"   largest class {largest} {train_counts[largest] / data.counts['train']:.0%}; imbalance ratio "
          f"{report['imbalance_ratio']:.0f}; rare (< {report['rare_threshold']} rows): {len(report['rare'])} classes")
    for pair in report["confusable_pairs"][:4]:
        print(f"   confusable: {pair['a']} / {pair['b']}: {pair['mutual']:.0%} of their rows predicted as the other")
    merges = report["suggested_merges"] or {}
    print("   suggested merges: " + ("; ".join(f"{a} -> {b}" for a, b in merges.items()) or "none"))

    def fine_tune(title: str, train_path, valid_path, n_classes: int, **hp) -> str:
        from tunelab.jobs.progress import watch
        from tunelab.jobs.submit import job_request, submit
        from tunelab.store.records import SUCCEEDED

        _title(title)
        flags = " ".join(f"--{k}" if v is True else f"--{k} {v}" for k, v in hp.items())
        print(f"   tunelab api fine_tunes.create -t {train_path} -v {valid_path} -m {args.model} "
              f"--n_epochs {epochs} {flags}".rstrip())
        submission = submit(store, job_request(
            train_path, args.model, valid_path,
            hyperparameters={"n_epochs": epochs, "seed": args.seed, "max_length": args.max_length, **hp},
            compute_classification_metrics=True, classification_n_classes=n_classes))
        job = watch(store, submission.job.id, verbose=False, desc=f"   {submission.job.legacy_id}",
                    write=lambda line: print(f"   {line}", flush=True))
        if job.status != SUCCEEDED:
            raise JobFailedError(f"Job {job.legacy_id} {job.status}: {(job.error or {}).get('message', '')}",
                                 job_id=job.id, status=job.status)
        print(f"   -> {job.fine_tuned_model} ({job.train_seconds:.0f} s)")
        return job.fine_tuned_model

    n = len(data.labels)
    train, valid, test = data.paths["train"], data.paths["valid"], data.paths["test"]
    plain = fine_tune("2. Fine-tune: cross-entropy (post-hoc logit adjustment tuned on validation)", train, valid, n,
                      logit_adjustment=True)
    weighted = fine_tune("3. Fine-tune with class weights", train, valid, n, class_weights=True)
    adjusted_loss = fine_tune("4. Fine-tune with the logit-adjusted loss", train, valid, n, loss="logit_adjusted")

    _title(f"5. Find label issues (cleanlab on cross-validated TF-IDF) and drop the {DROP_SHARE:.0%} most suspicious")
    cleaned = None
    try:
        rows, probs, issues = find_label_issues(train, seed=args.seed)
    except InvalidInputError as exc:  # a tiny --train-size can leave a class with one row
        print(f"   skipped: {exc.message}")
    else:
        limit = int(DROP_SHARE * len(rows))
        files = write_issues(train, rows, issues, out / "issues", action="drop", limit=limit)
        # The rows of rare classes stay (labels issues --keep-rare): count what was really dropped.
        dropped, kept = acted_on(rows, issues, limit=limit)
        print(f"   {len(issues)} rows flagged; dropped {len(dropped)}"
              + (f" (kept {len(kept)} of classes with fewer than {RARE_COUNT} training rows)" if kept else "")
              + f"; review file {files['issues']}")
        for issue in issues[:3]:
            print(f"   line {issue['line']}: given {issue['given'].strip()}, suggested {issue['suggested'].strip()}: "
                  f"{' '.join(issue['prompt'].split())[:70]}…")
        if dropped:
            cleaned = fine_tune("5b. Fine-tune on the cleaned training file (post-hoc adjustment)", files["train"],
                                valid, n, logit_adjustment=True)
        else:
            print("   nothing dropped, so no fine-tune on a 'cleaned' file that is the training file itself")

    merged_data = None
    if merges:
        _title("6. Merge the suggested classes in every split (`tunelab labels merge`) and fine-tune")
        merged_data = merge_dataset(out / "data", merges, out / "data-merged")
        print(f"   {len(merged_data.labels)} classes: " + "; ".join(f"{a} -> {b}" for a, b in merged_data.mapping.items()))
        merged = fine_tune("6b. Fine-tune on the merged labels (post-hoc adjustment)", merged_data.paths["train"],
                           merged_data.paths["valid"], len(merged_data.labels), logit_adjustment=True)

    _title("7. Evaluate on the held-out test split")
    progress = interactive()

    def evaluate(model, folder, test_path, train_path=None):
        return evaluate_model(model, test_path, train_path=train_path, out_dir=out / "eval" / folder, store=store,
                              progress=progress)

    reports = {"plain": evaluate(plain, "plain", test, train), "weighted": evaluate(weighted, "weighted", test),
               "adjusted_loss": evaluate(adjusted_loss, "adjusted-loss", test)}
    if cleaned is not None:
        reports["cleaned"] = evaluate(cleaned, "cleaned", test)
    if merged_data is not None:
        reports["merged"] = evaluate(merged, "merged", merged_data.paths["test"], merged_data.paths["train"])
    table = _table(reports, n, merged_data)
    print(table)
    shutil.copy(reports["plain"]["files"]["confusion_matrix"], out / "confusion_before_merge.png")
    if merged_data is not None:
        shutil.copy(reports["merged"]["files"]["confusion_matrix"], out / "confusion_after_merge.png")
    (out / "table.md").write_text(table + "\n")
    elapsed = time.monotonic() - started
    (out / "summary.json").write_text(json.dumps({
        "sizes": data.counts, "elapsed_seconds": round(elapsed, 1), "suggested_merges": merges,
        "reports": {k: {key: r.get(key) for _, key in COLUMNS} | {"model": r["model"],
                                                                  "logit_adjustment": r.get("logit_adjustment")}
                    for k, r in reports.items()}}, indent=2, default=str))
    _title(f"Done in {elapsed / 60:.1f} min. Report folder: {out} (table.md, confusion_before_merge.png, "
           "confusion_after_merge.png, inspect/, issues/, eval/)")
    return 0


def _table(reports: dict, n: int, merged_data) -> str:
    plain = reports["plain"]
    side = plain.get("logit_adjustment") or {}
    tfidf = (plain.get("baselines") or {}).get("tfidf") or {}
    rows = [(f"TF-IDF + logistic regression ({n} classes)", tfidf),
            ("fine-tuned, cross-entropy (argmax)", side.get("argmax") or plain),
            (f"  + post-hoc logit adjustment (tau {side.get('tau', 0):.1f})", side.get("adjusted") or plain),
            ("fine-tuned, class weights", reports["weighted"]),
            ("fine-tuned, logit-adjusted loss", reports["adjusted_loss"])]
    if "cleaned" in reports:
        rows.append(("cleaned labels + post-hoc adjustment", reports["cleaned"]))
    if merged_data is not None:
        merged = reports["merged"]
        merged_tfidf = (merged.get("baselines") or {}).get("tfidf") or {}
        k = len(merged_data.labels)
        rows += [(f"merged labels ({k} classes) + post-hoc adjustment", merged),
                 (f"TF-IDF + logistic regression ({k} classes)", merged_tfidf)]
    header = "| on the test split | " + " | ".join(title for title, _ in COLUMNS) + " |"
    lines = [header, "|---|" + "---:|" * len(COLUMNS)]
    for title, metrics in rows:
        cells = [f"{metrics[key]:.3f}" if isinstance(metrics.get(key), (int, float)) else "—" for _, key in COLUMNS]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _title(text: str) -> None:
    print(f"\n== {text}", flush=True)
    sys.stdout.flush()
