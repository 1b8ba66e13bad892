"""`tunelab labels inspect|merge|issues`: the levers of the chapter's category case study (§4.6.4),
one command each — see what a label set looks like, merge confusable classes, find mislabelled rows."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from tunelab.cli.common import add_command, format_columns, print_json, require_paths
from tunelab.console import interactive


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def register(subparsers) -> None:
    labels = subparsers.add_parser("labels", help="Inspect a label set, merge labels, find label issues.")
    sub = labels.add_subparsers(dest="labels_command", metavar="COMMAND")

    p = add_command(sub, "inspect", cmd_inspect,
                    help="Report a label set: counts and shares per split, imbalance, rare classes, duplicate and "
                         "conflicting prompts, the most confusable class pairs and a suggested merge map.",
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="Confusable pairs come from out-of-sample probabilities: k-fold cross-validated TF-IDF +\n"
                           "logistic regression, or -m MODEL's scores. Writes labels_report.json, class_counts.png\n"
                           "and merge_map.json (ready for `--merge-labels`) to --out.")
    p.add_argument("-f", "--file", required=True, help="Training file (prompt/completion JSONL).")
    p.add_argument("-v", "--valid", default=None, help="Validation file, counted per split too (default: none).")
    p.add_argument("-t", "--test", default=None, help="Test file, counted per split too, never used to fit anything (default: none).")
    _probability_options(p)
    p.add_argument("--rare", type=_count, default=None, metavar="N",
                   help="Classes with fewer training rows than N are reported as too rare (default: 20).")
    p.add_argument("--no-confusion", dest="confusion", action="store_false",
                   help="Counts and duplicates only: skip the probabilities (fast).")
    p.add_argument("--out", default="tunelab-report/labels", metavar="DIR",
                   help="Report folder (default: ./tunelab-report/labels/).")
    p.add_argument("--json", action="store_true", help="Print the report as JSON.")

    p = add_command(sub, "merge", cmd_merge,
                    help="Merge or rename labels in an existing dataset folder (or prompt/completion files), the "
                         "same way in train/valid/test, and record the map in labels.json.",
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="Examples:\n  tunelab labels merge data/classes --merge 'Chemises+Intimates=Intimates' --out data/merged\n"
                           "  tunelab labels merge data/classes --merge-labels merge_map.json --out data/merged")
    p.add_argument("input", nargs="?", default=None, metavar="DIR",
                   help="A dataset folder from `tunelab datasets build` (train/valid/test.jsonl + labels.json).")
    p.add_argument("-f", "--file", default=None, help="Training file, instead of a folder (default: none).")
    p.add_argument("-v", "--valid", default=None, help="Validation file, with -f (default: none).")
    p.add_argument("-t", "--test", default=None, help="Test file, with -f (default: none).")
    p.add_argument("--merge-labels", metavar="MAP.json", help='JSON object {"old label": "new label", ...} (default: none).')
    p.add_argument("--merge", action="append", default=[], metavar="A+B=C",
                   help="Merge A and B into C (or rename with A=C); repeat for several merges (default: none).")
    p.add_argument("--out", required=True, metavar="DIR", help="Folder for the merged files and labels.json.")

    p = add_command(sub, "issues", cmd_issues,
                    help="Rank training examples whose given label the data contradicts (confident learning, "
                         "cleanlab), write a review file and optionally a cleaned training file.",
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="Writes issues.jsonl (most suspicious first: prompt, given and suggested label, score) to --out;\n"
                           "with --drop or --relabel also train.jsonl, cleaned, and changes.jsonl. The test file is never\n"
                           "touched.")
    p.add_argument("-f", "--file", required=True, help="Training file (prompt/completion JSONL).")
    _probability_options(p)
    action = p.add_mutually_exclusive_group()
    action.add_argument("--drop", dest="action", action="store_const", const="drop",
                        help="Write a cleaned train.jsonl without the flagged rows.")
    action.add_argument("--relabel", dest="action", action="store_const", const="relabel",
                        help="Write a cleaned train.jsonl with the flagged rows given the suggested label.")
    p.add_argument("--limit", type=_count, default=None, metavar="N",
                   help="Drop or relabel only the N most suspicious rows (default: every flagged row).")
    p.add_argument("--keep-rare", type=_count, default=None, metavar="N",
                   help="Leave the flagged rows of classes with fewer than N training rows as they are (default: "
                        "20; 0 acts on every class): a judge that saw a class a handful of times flags its "
                        "correct rows too.")
    p.add_argument("--show", type=_count, default=10, metavar="N", help="Issues to print (default: 10).")
    p.add_argument("--out", default="tunelab-report/label-issues", metavar="DIR",
                   help="Output folder (default: ./tunelab-report/label-issues/).")
    p.add_argument("--json", action="store_true", help="Print the issues as JSON.")


def _probability_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", default=None,
                   help="Use this fine-tuned model's probabilities (default: cross-validated TF-IDF + logistic "
                        "regression, out of sample for every row).")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="Cross-validation folds (default: 5).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the folds (default: 0).")


def cmd_inspect(args: argparse.Namespace) -> int:
    from tunelab.evaluation.label_audit import RARE_COUNT
    from tunelab.evaluation.label_report import inspect_labels, summary_counts, write_inspect_report

    require_paths(("training file", args.file), ("validation file", args.valid), ("test file", args.test))
    report = inspect_labels(args.file, valid_path=args.valid, test_path=args.test, model=args.model,
                            folds=args.folds, seed=args.seed, confusion=args.confusion,
                            rare=RARE_COUNT if args.rare is None else args.rare, progress=interactive())
    files = write_inspect_report(report, args.out)
    if args.json:
        print_json(report)
        return 0
    splits = list(report["counts"])
    print(f"{len(report['labels'])} labels; rows: " + ", ".join(f"{s} {report['n'][s]}" for s in splits))
    print(format_columns(["label", "train", "share"] + splits[1:], summary_counts(report), right=frozenset(range(1, 3 + len(splits)))))
    ratio = report["imbalance_ratio"]
    print(f"\nImbalance ratio (largest / smallest training class): {ratio:.1f}" if ratio else "")
    if report["rare"]:
        print(f"Too rare to learn (< {report['rare_threshold']} training rows): "
              + ", ".join(f"{label} ({n})" for label, n in report["rare"].items()))
    if report["missing_in_train"]:
        # A category found only in the test (or validation) file read as just one more rare class,
        # "software (0)"; a model trained on this file can never answer it.
        where = [", ".join(f"{report['counts'][s][label]} {s}" for s in splits[1:] if report["counts"][s].get(label))
                 for label in report["missing_in_train"]]
        print("No training row, so no model trained on this file can answer it: "
              + ", ".join(f"{label} ({w} row(s))" for label, w in zip(report["missing_in_train"], where))
              + ". Fold it into a label with `tunelab labels merge DIR --merge 'OLD=NEW' --out NEW_DIR`, "
                "or add training rows.")
    dup = report["duplicates"]
    print(f"Exact duplicate prompts: {len(dup['exact'])} group(s); same prompt, different labels: "
          f"{len(dup['conflicts'])}; near duplicates (cosine >= {dup['near_threshold']}): {len(dup['near'])} pair(s)")
    for c in dup["conflicts"][:5]:
        print(f"  conflict {', '.join(c['rows'])}: {' / '.join(c['labels'])}")
    if report.get("unscored"):
        print(f"One training row only (not cross-validated; merge them first): {', '.join(report['unscored'])}")
    if report["confusable_pairs"] is not None:
        # A model's own scores are in sample for the rows it trained on: not a cross-validated number.
        accuracy = "accuracy, in sample where the model trained on the rows" if args.model else "cross-validated accuracy"
        print(f"\nMost confusable pairs ({report['probabilities']}; {accuracy} {report['cv_accuracy']:.3f}):")
        rows = [[p["a"], p["b"], f"{p['mutual']:.0%}", f"{p['a_as_b']:.0%}", f"{p['b_as_a']:.0%}",
                 str(p["overlapping_examples"])] for p in report["confusable_pairs"][:10]]
        print(format_columns(["class A", "class B", "mixed up", "A as B", "B as A", "cleanlab overlap"], rows,
                             right=frozenset({2, 3, 4, 5})))
        merges = report["suggested_merges"]
        if merges:
            print("\nSuggested merges: " + "; ".join(f"{old} -> {new} ({_merge_reason(report, old, new)})"
                                                    for old, new in merges.items()))
            source, out = _merge_source(args)
            print(f"Apply them: tunelab labels merge {source} --merge-labels "
                  f"{shlex.quote(str(files['merge_map']))} --out {out}")
        else:
            print("\nNo merge suggested.")
    print(f"\nWrote {', '.join(Path(p).name for p in files.values())} to {args.out}/")
    return 0


def _merge_source(args) -> tuple[str, str]:
    """The inspected files as `labels merge` takes them, and an --out beside them: the folder of a
    `datasets build` (its labels.json goes along), else the files themselves."""
    folder = Path(args.file).parent
    if (folder / "labels.json").is_file() and all(
            p is None or Path(p).parent == folder for p in (args.valid, args.test)):
        return shlex.quote(str(folder)), shlex.quote(str(folder) + "-merged")
    given = [(flag, p) for flag, p in (("-f", args.file), ("-v", args.valid), ("-t", args.test)) if p]
    return " ".join(f"{flag} {shlex.quote(str(p))}" for flag, p in given), "merged"


def _merge_reason(report: dict, old: str, new: str) -> str:
    """The evidence behind one suggested merge, which the 10-row table may not show."""
    pair = next((p for p in report["confusable_pairs"] if {p["a"], p["b"]} == {old, new}), None)
    if pair is None:
        return "see labels_report.json"
    share = pair["a_as_b"] if pair["a"] == old else pair["b_as_a"]
    n = report["counts"]["train"].get(old, 0)
    if n < report["rare_threshold"]:
        return f"{round(share * n)} of its {n} rows predicted as {new}"
    return f"{pair['mutual']:.0%} of the pair's rows mixed up"


def cmd_merge(args: argparse.Namespace) -> int:
    from tunelab.data.label_maps import merge_dataset, merge_request
    from tunelab.errors import InvalidInputError

    if bool(args.input) == bool(args.file):
        raise InvalidInputError("Give a dataset folder, or the files with -f TRAIN [-v VALID] [-t TEST].")
    require_paths(("dataset folder", args.input), ("training file", args.file), ("validation file", args.valid),
                  ("test file", args.test), ("merge map file", args.merge_labels))
    if args.input is None and not Path(args.file).is_file():
        raise InvalidInputError(f"{args.file} is a folder, not a data file.")
    if args.input is not None and not Path(args.input).is_dir():
        raise InvalidInputError(f"{args.input}: not a dataset folder.", hint="Give the files with -f instead.")
    mapping = merge_request(args.merge_labels, args.merge)
    if not mapping:
        raise InvalidInputError("Say what to merge: --merge 'A+B=C' or --merge-labels MAP.json.")
    source = args.input or {k: v for k, v in (("train", args.file), ("valid", args.valid), ("test", args.test)) if v}
    result = merge_dataset(source, mapping, args.out)
    print(f"Merged {len(result.mapping)} label(s): " + "; ".join(f"{old} -> {new}" for old, new in result.mapping.items()))
    splits = [s for s in ("train", "valid", "test") if s in result.counts]
    rows = [[label] + [str(result.counts[s].get(label, 0)) for s in splits] for label in result.labels]
    print(format_columns(["label"] + splits, rows, right=frozenset(range(1, 1 + len(splits)))))
    for name, path in result.paths.items():
        print(f"  {path}")
    return 0


def cmd_issues(args: argparse.Namespace) -> int:
    from tunelab.data.labels import preview
    from tunelab.evaluation.label_audit import RARE_COUNT
    from tunelab.evaluation.label_report import acted_on, find_label_issues, write_issues

    require_paths(("training file", args.file))
    keep_rare = RARE_COUNT if args.keep_rare is None else args.keep_rare
    train, probs, issues = find_label_issues(args.file, model=args.model, folds=args.folds, seed=args.seed,
                                             progress=interactive())
    files = write_issues(args.file, train, issues, args.out, action=args.action, limit=args.limit,
                         keep_rare=keep_rare)
    if args.json:
        print_json({"probabilities": probs.source, "n": len(train), "unscored": probs.unscored, "issues": issues,
                    "files": files})
        return 0
    print(f"{len(issues)} of {len(train)} training rows look mislabelled ({probs.source}; cleanlab confident learning).")
    if probs.unscored:
        print(f"Not scored: {len(probs.unscored)} class(es) with a single training row ({preview(probs.unscored, 8)}): "
              "cross-validation cannot judge a class no fold learnt. Merge them into a related label "
              "(tunelab labels merge --merge 'RARE+BIG=BIG'), or judge them with a fine-tuned model (-m).")
    rows = [[str(i["line"]), i["given"].strip(), i["suggested"].strip(), f"{i['score']:.3f}",
             " ".join(i["prompt"].split())] for i in issues[: args.show]]
    if rows:
        print(format_columns(["line", "given", "suggested", "score", "prompt"], rows, right=frozenset({0, 3}),
                             cut_middle=False))
    if args.action:
        done, kept = acted_on(train, issues, limit=args.limit, keep_rare=keep_rare)
        print(f"\n{'Dropped' if args.action == 'drop' else 'Relabelled'} {len(done)} row(s): cleaned file "
              f"{files['train']}, record {files['changes']}")
        if kept:
            classes = sorted({i["given"].strip() for i in kept})
            print(f"Kept {len(kept)} flagged row(s) of {len(classes)} class(es) with fewer than {keep_rare} training "
                  f"rows ({', '.join(classes[:8])}{', ...' if len(classes) > 8 else ''}): review them in "
                  "issues.jsonl, or act on them too with --keep-rare 0.")
    print(f"Wrote {', '.join(Path(p).name for p in files.values())} to {args.out}/")
    return 0
