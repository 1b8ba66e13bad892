"""`tunelab evaluate` (metrics of one model on a held-out test file) and `tunelab compare`
(Table 4.1: several models side by side with their training cost). The work is in
tunelab.evaluation; this module parses, prints and says where the files went."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunelab.cli.common import add_command, print_json
from tunelab.errors import InvalidInputError
from tunelab.jobs.progress import interactive


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _number(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return int(value) if value.is_integer() else value


def register(subparsers) -> None:
    ev = add_command(
        subparsers, "evaluate", cmd_evaluate,
        help="Score a held-out test file with a model: accuracy (with a bootstrap confidence interval), "
             "good-vs-bad and one-off accuracy, MAE and QWK for ordinal labels, F1, calibration, perplexity.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes metrics.json, predictions.jsonl, confusion_matrix.png, reliability.png and per_class_f1.png\n"
               "to --out (default: ./tunelab-report/<model id>/). With --train, adds a majority-class and a\n"
               "TF-IDF + logistic regression baseline trained on that file.",
    )
    ev.add_argument("-m", "--model", required=True,
                    help="Fine-tuned model id, a checkpoint's <model>:ckpt-step-<step>, a tunelab model folder "
                         "(e.g. a job's checkpoints/epoch-N), or a base model name.")
    ev.add_argument("-f", "--file", required=True, help="Test file (prompt/completion JSONL) or file id.")
    ev.add_argument("--decision", default="argmax", choices=["argmax", "median", "good_vs_bad"],
                    help="Which label answers, for the headline rows: argmax, the most probable (default); for "
                         "ordinal labels also median (fewest stars off) or good_vs_bad. Every rule is scored "
                         "in the decision-rule table anyway; serve the one you pick with `tunelab serve --decision`.")
    _common(ev, out_default="./tunelab-report/<model id>/")

    cmp_ = add_command(
        subparsers, "compare", cmd_compare,
        help="Compare models side by side on one test file (the chapter's Table 4.1): metrics, epochs, "
             "training examples/tokens, wall time and compute.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes compare.md, compare.csv, compare.png (and each model's evaluate report) to --out\n"
               "(default: ./tunelab-report/compare/).\n\n"
               "Name the columns and the chart's legend either way:\n"
               "  tunelab compare MODEL1 MODEL2 --names \"1 epoch\" \"4 epochs\" -f test.jsonl\n"
               "  tunelab compare \"1 epoch=MODEL1\" \"4 epochs=MODEL2\" -f test.jsonl",
    )
    cmp_.add_argument("models", nargs="+", metavar="MODEL",
                      help="Model ids (or tunelab model folders) to compare, each optionally as NAME=MODEL to "
                           "name its column.")
    cmp_.add_argument("--names", nargs="+", metavar="NAME", default=None,
                      help="One name per model, in order, for the table header and the chart legend "
                           "(default: the model ids).")
    cmp_.add_argument("-f", "--file", required=True, help="Test file (prompt/completion JSONL) or file id.")
    _common(cmp_, out_default="./tunelab-report/compare/")


def _common(parser: argparse.ArgumentParser, *, out_default: str) -> None:
    parser.add_argument("--train", default=None, metavar="FILE",
                        help="Training file (path or file id) for the majority and TF-IDF baselines "
                             "(default: no baselines).")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help=f"Output folder (default: {out_default}).")
    parser.add_argument("--threshold", type=_number, default=None, metavar="T",
                        help="Good-vs-bad cut for numeric labels: both <= T or both > T "
                             "(default: 3 for 1-5 stars, the middle of the range otherwise).")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=_positive_int, default=32, metavar="N",
                        help="Rows scored at once (default: 32).")
    parser.add_argument("--json", action="store_true", help="Print the metrics as JSON instead of tables.")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="No progress bar (default: a bar while scoring, when stderr is a terminal).")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tunelab.evaluation.report import default_out_dir, evaluate_model, format_report
    from tunelab.evaluation.verdict import verdict

    out = Path(args.out) if args.out else default_out_dir(args.model)
    report = evaluate_model(args.model, args.file, train_path=args.train, out_dir=out, batch_size=args.batch_size,
                            progress=args.progress and interactive(), threshold=args.threshold,
                            decision=args.decision, folders=True)
    if args.json:
        print_json({k: v for k, v in report.items() if k != "calibration"})
        return 0
    print(format_report(report))
    print()
    said = verdict(report, name=report["model"])
    if said:
        print(said)
        print()
    print(f"Wrote the report to {out}/: " + ", ".join(Path(p).name for p in report["files"].values()))
    return 0


def named_models(given: list[str], names: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """(model ids, {model id: name}) from `NAME=MODEL` arguments and/or --names. An argument with
    "=" is NAME=MODEL unless it is an existing path (a model folder may contain "=")."""
    models, named = [], {}
    for text in given:
        name, sep, model = text.partition("=")
        if sep and name.strip() and model.strip() and not Path(text).exists():
            models.append(model.strip())
            named[model.strip()] = name.strip()
        else:
            models.append(text)
    if names is not None:
        if len(names) != len(models):
            raise InvalidInputError(f"--names gives {len(names)} name(s) for {len(models)} model(s); "
                                    "give one per model, in order.")
        if named:
            raise InvalidInputError("Name the models either with NAME=MODEL or with --names, not both.")
        named = dict(zip(models, names))
    return models, named


def cmd_compare(args: argparse.Namespace) -> int:
    from tunelab.evaluation.compare import compare_models

    out = Path(args.out) if args.out else Path.cwd() / "tunelab-report" / "compare"
    models, names = named_models(args.models, args.names)
    result = compare_models(models, args.file, train_path=args.train, out_dir=out, batch_size=args.batch_size,
                            progress=args.progress and interactive(), threshold=args.threshold, names=names,
                            folders=True)
    if args.json:
        print_json({k: v for k, v in result.items() if k not in ("reports", "markdown")})
        return 0
    print(result["markdown"])
    print(f"Wrote compare.md, compare.csv, compare.png and compare.json to {out}/ "
          f"(each model's own report in a subfolder).")
    return 0
