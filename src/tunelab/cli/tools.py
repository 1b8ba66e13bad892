"""`tunelab tools fine_tunes.prepare_data`: the legacy OpenAI data checker.

The analysis lives in tunelab.data.prepare; this module only asks and prints, in the legacy
tool's style ("Analyzing...", "- finding", "[Recommended] action [Y/n]: Y").
"""

from __future__ import annotations

import argparse
import sys

from tunelab.cli.common import add_command, confirm
from tunelab.cli.datasets import DEFAULT_MODEL


def register(subparsers) -> None:
    tools = subparsers.add_parser("tools", help="Client-side tools (data preparation).",
                                  description="Client-side tools (data preparation).")
    sub = tools.add_subparsers(dest="tool", metavar="TOOL")
    parser = add_command(
        sub, "fine_tunes.prepare_data", cmd_prepare_data,
        help="Check a training data file, propose fixes and write <name>_prepared.jsonl.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Reads CSV, TSV, XLSX, JSON (array of objects) and JSONL with `prompt` and `completion` "
               "columns (any letter case), chat JSONL with `messages`, or .txt (each line a completion, for "
               "open-ended generation). An existing prepared file is never overwritten: ` (1)` is added.",
    )
    parser.add_argument("-f", "--file", required=True, help="The data file to check.")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="Accept every recommended action without asking.")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the train/validation split (default: 42).")
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL,
                        help=f"Base model to put in the suggested fine_tunes.create command (default: {DEFAULT_MODEL}).")


def _ask(question: str, quiet: bool) -> bool:
    if quiet or not sys.stdin.isatty():
        print(f"{question} [Y/n]: Y")  # show what was accepted, as the legacy -q output did
        return True
    return confirm(question, assume_yes=False)


def cmd_prepare_data(args: argparse.Namespace) -> int:
    from tunelab.data import prepare

    print("Analyzing...\n")
    analysis = prepare.analyze(args.file)
    for finding in analysis.findings:
        print(f"- {'WARNING: ' if finding.warning else ''}{finding.message}")

    accepted = []
    if analysis.actions:
        print("\nBased on the analysis we will perform the following actions:")
        for action in analysis.actions:
            if action.necessary:  # as in the legacy tool, necessary fixes are not optional
                print(f"{action.label} {action.message}")
                accepted.append(action)
            elif _ask(f"{action.label} {action.message}", args.quiet):
                accepted.append(action)
    else:
        print("\nNo remediations found.")
    data = prepare.apply_actions(analysis.data, accepted, analysis.path)

    split = prepare.plan_split(data, seed=args.seed)
    if split is not None:
        how = "stratified by class" if split.stratified else "at random"
        question = (f"[Recommended] Split into a training set ({len(split.train)} examples) and a validation "
                    f"set ({len(split.valid)} examples), {how}, seed {args.seed}")
        if _ask(question, args.quiet):
            if split.note:
                print(f"  Note: {split.note}")
        else:
            split = None

    labels = prepare.classes(data)
    replies = prepare.replies(data) if labels else None
    if not accepted and split is None and analysis.format == "jsonl" and \
            not _ask("Your data is unchanged. Write it to a new JSONL file anyway?", args.quiet):
        print("Aborting... did not write the file")
        print("\nYou can use your file for fine-tuning:")
        print(f"> {prepare.next_command(analysis.path, None, labels, args.model, replies)}")
        return 0
    paths = prepare.write_prepared(analysis.path, data, split)  # never over an existing file: " (1)"
    print(f"\nWrote {' and '.join(f'`{p}`' for p in paths)} ({len(data)} examples)")
    print(f"\nNow use {'these files' if len(paths) > 1 else 'that file'} when fine-tuning:")
    print(f"> {prepare.next_command(paths[0], paths[1] if split else None, labels, args.model, replies)}")
    for note in prepare.usage_notes(data):
        print(f"\n{note}")
    return 0
