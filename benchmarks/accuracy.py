"""Accuracy of the default ("auto") recipe against the TF-IDF baseline, on the bundled clothing
ratings (canonical split) or on any folder of prompt/completion files, in one process through the
Python API (`tunelab.create_job`, `job.wait()`, `tunelab.evaluate`) with the same store and
worker as the CLI.

    python benchmarks/accuracy.py                          # clothing ratings, full canonical split
    python benchmarks/accuracy.py --rows 3000              # a quick stratified subset of the training rows
    python benchmarks/accuracy.py --continue-epochs 3      # also 1 + 3 epochs (continued training)
    python benchmarks/accuracy.py --quality                # also smollm2-135m with the classifier method
    python benchmarks/accuracy.py --data sst5-folder       # train.jsonl / valid.jsonl / test.jsonl

Prints exact accuracy, good-vs-bad, one-off, MAE, macro-F1, ECE (after and before temperature
scaling), the training wall time and the TF-IDF + logistic regression baseline side by side, and
writes accuracy.png and accuracy.json to --out. SST-5 in this layout:
`tunelab datasets build <folder with sst5_{train,dev,test}.jsonl> --preset sst5 --out sst5` (keeps the
standard split).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROWS = [("exact accuracy", "accuracy"), ("good vs bad", "good_vs_bad_accuracy"), ("one-off", "one_off_accuracy"),
        ("MAE", "mae"), ("macro F1", "macro_f1"), ("ECE", "ece"), ("ECE before calibration", "ece_uncalibrated")]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with train.jsonl, valid.jsonl and test.jsonl (default: build the "
                                       "bundled clothing ratings with their canonical split)")
    parser.add_argument("--rows", type=int, help="use N training rows (a seeded sample; default: all)")
    parser.add_argument("--valid-rows", type=int, help="use N validation rows (default: all)")
    parser.add_argument("--test-rows", type=int, help="use N test rows (default: all)")
    parser.add_argument("--model", default="ada", help="base model of the default recipe (default: ada)")
    parser.add_argument("--continue-epochs", type=int, default=0,
                        help="also continue the default model for N more epochs and score it (the 1 + N check)")
    parser.add_argument("--first-epochs", type=int, default=None,
                        help="epochs of the first model (default: auto; the 1 + N check uses 1)")
    parser.add_argument("--quality", action="store_true", help="also train smollm2-135m with the classifier method")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                        help="extra hyperparameter for the default recipe (repeatable), e.g. --hp n_epochs=3")
    parser.add_argument("--out", default="benchmark-accuracy", help="output folder (default ./benchmark-accuracy)")
    parser.add_argument("--home", help="TUNELAB_HOME to use (default: a fresh one under --out)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _subset(path: Path, n: int | None, out: Path, seed: int) -> Path:
    """The first n rows of a seeded shuffle (a random sample that keeps label proportions on average)."""
    if n is None:
        return path
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if n >= len(lines):
        return path
    random.Random(seed).shuffle(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    return out


def prepare_data(args, out: Path) -> tuple[str, dict[str, Path]]:
    if args.data:
        folder = Path(args.data)
        paths = {name: folder / f"{name}.jsonl" for name in ("train", "valid", "test")}
        missing = [str(p) for p in paths.values() if not p.exists()]
        if missing:
            sys.exit(f"--data {folder}: missing {', '.join(missing)} (build it with `tunelab datasets build`)")
        name = folder.name
    else:
        from tunelab.data.builder import build_dataset

        built = build_dataset("clothing-reviews", out_dir=out / "data-clothing", seed=args.seed)
        paths = {name: built.paths[name] for name in ("train", "valid", "test")}
        name = "clothing-reviews (canonical split)"
    paths = {"train": _subset(paths["train"], args.rows, out / "subset" / "train.jsonl", args.seed),
             "valid": _subset(paths["valid"], args.valid_rows, out / "subset" / "valid.jsonl", args.seed),
             "test": _subset(paths["test"], args.test_rows, out / "subset" / "test.jsonl", args.seed)}
    return name, paths


def train(tunelab, paths, model: str, n_classes: int, progress: bool, **hyperparameters) -> tuple[str, float, dict]:
    started = time.monotonic()
    job = tunelab.create_job(paths["train"], model=model, validation_file=paths["valid"],
                             compute_classification_metrics=True, classification_n_classes=n_classes,
                             **hyperparameters)
    job.wait(progress=progress)
    seconds = time.monotonic() - started
    view = job.to_dict()
    print(f"  {job.fine_tuned_model}: {view['hyperparameters']} in {seconds / 60:.1f} min "
          f"(training {view['train_seconds'] / 60:.1f} min)", flush=True)
    for event in job.events():
        if event["message"].startswith(("Hyperparameters:", "Kept", "Calibrated", "Stopped early", "Epoch ")):
            print(f"    {event['message']}", flush=True)
    return job.fine_tuned_model, view["train_seconds"], view


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["TUNELAB_HOME"] = str(Path(args.home).resolve() if args.home else out / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tunelab
    from tunelab.data.readers import read_prompt_completion
    from tunelab.evaluation.plots import plot_grouped_bars
    from tunelab.evaluation.report import format_cell

    name, paths = prepare_data(args, out)
    n_classes = len({e.completion for e in read_prompt_completion(paths["train"])})
    counts = {k: sum(1 for line in open(p, encoding="utf-8") if line.strip()) for k, p in paths.items()}
    print(f"Data: {name}: {counts['train']} train, {counts['valid']} validation, {counts['test']} test rows, "
          f"{n_classes} classes. TUNELAB_HOME={os.environ['TUNELAB_HOME']}", flush=True)
    progress = not args.no_progress
    extra = {kv.split("=", 1)[0]: _value(kv.split("=", 1)[1]) for kv in args.hp}
    if args.first_epochs is not None:
        extra["n_epochs"] = args.first_epochs

    columns: dict[str, dict] = {}
    wall: dict[str, float | None] = {}
    print(f"Default recipe (-m {args.model}):", flush=True)
    first, seconds, _ = train(tunelab, paths, args.model, n_classes, progress, **extra)
    report = tunelab.evaluate(first, paths["test"], train_file=paths["train"], progress=progress)
    label = "default recipe"
    columns[label], wall[label] = report, seconds
    if args.continue_epochs:
        print(f"Continued for {args.continue_epochs} more epochs (-m {first}):", flush=True)
        child, child_seconds, _ = train(tunelab, paths, first, n_classes, progress, n_epochs=args.continue_epochs)
        child_label = f"+ {args.continue_epochs} epochs"
        columns[child_label] = tunelab.evaluate(child, paths["test"], progress=progress)
        wall[child_label] = seconds + child_seconds
    if args.quality:
        print("Quality path (-m smollm2-135m --method classifier):", flush=True)
        q, q_seconds, _ = train(tunelab, paths, "smollm2-135m", n_classes, progress, method="classifier")
        columns["smollm2-135m"] = tunelab.evaluate(q, paths["test"], progress=progress)
        wall["smollm2-135m"] = q_seconds
    for baseline in ("tfidf", "majority"):
        columns[baseline if baseline != "tfidf" else "tf-idf"] = report["baselines"][baseline]
        wall[baseline if baseline != "tfidf" else "tf-idf"] = None

    header = ["metric", *columns]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(columns)]
    for title, key in ROWS:
        lines.append(f"| {title} | " + " | ".join(format_cell(c.get(key)) for c in columns.values()) + " |")
    lines.append("| training wall time | " + " | ".join(format_cell(wall[c], "duration") for c in columns) + " |")
    table = "\n".join(lines)
    print(f"\nOn {counts['test']} test rows of {name}:\n\n{table}\n")
    rules = report.get("decision_rules")
    if rules:
        print("Default recipe under each decision rule (exact / good-vs-bad / one-off / MAE / macro F1):")
        for rule, m in rules.items():
            print(f"  {rule:<12} " + " / ".join(format_cell(m.get(k)) for k in
                                                 ("accuracy", "good_vs_bad_accuracy", "one_off_accuracy", "mae",
                                                  "macro_f1")))
    chart = [(t, k) for t, k in ROWS if k not in ("mae", "ece_uncalibrated")]
    png = plot_grouped_bars([t for t, _ in chart], {c: [columns[c].get(k) for _, k in chart] for c in columns},
                            out / "accuracy.png", title=f"{name}: {counts['train']} training rows")
    (out / "accuracy.json").write_text(json.dumps(
        {"data": name, "counts": counts, "table": table, "wall_seconds": wall,
         "results": {c: {k: columns[c].get(k) for _, k in ROWS} for c in columns},
         "decision_rules": rules}, indent=2, default=str))
    print(f"Wrote {png} and {out / 'accuracy.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
