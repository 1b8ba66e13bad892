"""`tunelab datasets list` and `tunelab datasets build`."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunelab.cli.common import add_command, print_json, require_paths
from tunelab.errors import NotFoundError

# The default of `tunelab api fine_tunes.create -m`: an alias the model registry resolves per task.
DEFAULT_MODEL = "ada"


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _columns(text: str) -> list[str]:
    columns = [c.strip() for c in text.split(",") if c.strip()]
    if not columns:
        raise argparse.ArgumentTypeError("give at least one column name")
    return columns


def _unescape(text: str) -> str:
    """Let `--separator '\\n\\n###\\n\\n'` mean real newlines, as it is hard to type them in a shell."""
    return text.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\0", "\\")


def register(subparsers) -> None:
    datasets = subparsers.add_parser("datasets", help="Bundled datasets and the prompt/completion dataset builder.")
    sub = datasets.add_subparsers(dest="datasets_command", metavar="COMMAND")

    parser = add_command(sub, "list", cmd_list, help="Show the datasets bundled with tunelab and the column presets.")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    parser = add_command(
        sub, "build", cmd_build,
        help="Build train/valid/test prompt-completion JSONL files and labels.json from a table.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Prompt = the --text fields joined with newlines + SEPARATOR; completion = ' ' + label.\n"
               "Split membership is seeded and stratified; --no-shuffle only changes the row order.\n"
               "Example: tunelab datasets build clothing-reviews --out data/stars --train-size 500",
    )
    parser.add_argument("input", metavar="INPUT", help="A CSV/TSV/XLSX/JSON/JSONL(.gz) file or a bundled dataset name.")
    parser.add_argument("--text", type=_columns, metavar="COL[,COL...]", help="Column(s) that make the prompt (default: the preset's).")
    parser.add_argument("--label", metavar="COL", help="Column holding the label, the completion (default: the preset's).")
    parser.add_argument("--preset", metavar="NAME", help="Named column mapping, see `tunelab datasets list` (default: a bundled dataset's own preset).")
    parser.add_argument("--out", required=True, metavar="DIR", help="Output directory.")
    parser.add_argument("--train-size", type=_count, metavar="N", help="At most N training rows, a stratified sample (default: all the rest).")
    parser.add_argument("--val-size", type=_count, metavar="N", help="Validation rows (default: 10%% of the rows).")
    parser.add_argument("--test-size", type=_count, metavar="N", help="Test rows (default: 10%% of the rows).")
    parser.add_argument("--language", metavar="CODE",
                        help="In a folder holding several languages' files (Amazon's dataset_de_train.json, "
                             "dataset_en_train.json, ...), use the files of this language code, e.g. en (default: "
                             "every file, which must then be one per split).")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the split and the shuffle (default: 42).")
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL,
                        help=f"Base model to put in the suggested fine_tunes.create command (default: {DEFAULT_MODEL}).")
    parser.add_argument("--no-shuffle", action="store_true",
                        help="Keep rows sorted by label in every file (the 'unshuffled' experiment).")
    parser.add_argument("--separator", type=_unescape, default="\n\n###\n\n",
                        help="Appended to every prompt; \\n and \\t are understood (default: '\\n\\n###\\n\\n'). "
                             "Write --separator='->' when the value starts with a dash.")
    parser.add_argument("--merge-labels", metavar="MAP.json",
                        help='Merge or rename labels before splitting: a JSON object {"old label": "new label", ...}; '
                             "recorded in labels.json (see `tunelab labels inspect` for suggestions; default: none).")
    parser.add_argument("--merge", action="append", default=[], metavar="A+B=C",
                        help="Merge labels A and B into C (or rename with A=C); repeat for several merges (default: none).")


def cmd_list(args: argparse.Namespace) -> int:
    from tunelab.data.bundled import BUNDLED, PARTS, PRESETS

    datasets = [
        {"name": d.name, "title": d.title, "rows": {p: d.count_rows(p) for p in PARTS}, "columns": list(d.columns),
         "licence": d.licence, "default_preset": d.default_preset}
        for d in BUNDLED.values()
    ]
    presets = [{"name": p.name, "text_columns": list(p.text_columns), "label_column": p.label_column,
                "description": p.description} for p in PRESETS.values()]
    if args.json:
        print_json({"datasets": datasets, "presets": presets})
        return 0
    print(f"{'NAME':<18} {'TRAIN':>6} {'VALID':>6} {'TEST':>6}  {'LICENCE':<8} {'DEFAULT PRESET':<16} COLUMNS")
    for d in datasets:
        rows = d["rows"]
        print(f"{d['name']:<18} {rows['train']:>6} {rows['valid']:>6} {rows['test']:>6}  {d['licence']:<8} "
              f"{d['default_preset']:<16} {', '.join(d['columns'])}")
        print(f"{'':<18} {d['title']}")
    print("\nPresets (--preset NAME):")
    for p in presets:
        print(f"  {p['name']:<20} {', '.join(p['text_columns'])} -> {p['label_column']}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from tunelab.data.builder import build_dataset
    from tunelab.data.bundled import BUNDLED, get_bundled
    from tunelab.data.label_maps import merge_request
    from tunelab.data.labels import with_leading_space
    from tunelab.data.prepare import next_command
    from tunelab.data.readers import read_prompt_completion
    from tunelab.models.vocabulary import base_model_notice

    # The builder refuses it as well, but as unusable input (2); a missing path is "not found" (3).
    if get_bundled(args.input) is None and not Path(args.input).exists():
        raise NotFoundError(f"{args.input}: no such file or bundled dataset.",
                            hint=f"Bundled datasets: {', '.join(BUNDLED)} (see `tunelab datasets list`).")
    require_paths(("merge map file", args.merge_labels))
    merge = merge_request(args.merge_labels, args.merge) or None
    result = build_dataset(
        args.input, out_dir=args.out, text_columns=args.text, label_column=args.label, preset=args.preset,
        train_size=args.train_size, val_size=args.val_size, test_size=args.test_size, seed=args.seed,
        shuffle=not args.no_shuffle, separator=args.separator, merge=merge, language=args.language,
    )
    dropped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in result.dropped.items() if n)
    print(f"Built {args.out} from {args.input}" + (f" (dropped rows: {dropped})" if dropped else ""))
    for name in ("train", "valid", "test"):
        print(f"  {result.paths[name]}: {result.counts[name]} rows")
    print(f"  {result.paths['labels']}")
    print()
    for line in result.summary():
        print(line)
    for note in result.notes:
        print(f"Note: {note}")
    unreadable = base_model_notice(args.model, [e.prompt for e in read_prompt_completion(result.paths["train"])])
    if unreadable:
        print(f"Note: {unreadable}")
    # The classes fine_tunes.create counts are the training file's: a category found only in the
    # test part (kept, with the note above) is not one of them.
    completions = [with_leading_space(label) for label in result.labels if result.label_counts["train"].get(label)]
    print(f"\nNext:\n> {next_command(result.paths['train'], result.paths['valid'], completions, args.model)}")
    return 0
