"""`tunelab feedback`: labels people give for served predictions (add, import), the review queue
(most uncertain first), and the export back to training. The work is in
tunelab.monitoring.feedback; this module parses and prints."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from tunelab.cli.common import add_command, format_columns, print_json, require_paths


def register(subparsers) -> None:
    fb = subparsers.add_parser(
        "feedback", help="Labels for served predictions: add, import, the review queue, export to training data.",
        description="Labels for served predictions: add, import, the review queue, export to training data.")
    sub = fb.add_subparsers(dest="feedback_command", metavar="COMMAND")

    add = add_command(sub, "add", cmd_add, help="Give the right label for a logged prediction (or for a text).")
    add.add_argument("--id", default=None, dest="response_id",
                     help="The response id of the prediction (cmpl-…, chatcmpl-…, labelscore-…; default: none, give --text).")
    add.add_argument("--index", type=int, default=0, help="Which prompt of that response (default 0).")
    add.add_argument("-m", "--model", default=None, help="Without --id: the model the text is for (default: none).")
    add.add_argument("--text", default=None, help="Without --id: the text (prompt) the label is for (default: none).")
    add.add_argument("--label", required=True, help="The right label ('4' names the model's ' 4').")
    add.add_argument("--source", default=None, help="Who says so (default human).")

    imp = add_command(sub, "import", cmd_import, formatter_class=argparse.RawDescriptionHelpFormatter,
                      help="Import labels from a CSV/TSV/XLSX/JSON/JSONL file (checked whole: nothing is written "
                           "if any row is bad).",
                      epilog="Columns: label, and either id (or response_id; with index) or text (or prompt) with\n"
                             "model (a column, or -m); source optional. Example JSONL lines:\n"
                             '  {"id": "cmpl-…", "label": "4"}\n'
                             '  {"text": "Lovely dress, runs small", "label": "4", "model": "ada:ft-…"}')
    imp.add_argument("file", metavar="FILE", help="The file to import.")
    imp.add_argument("-m", "--model", default=None, help="Model of rows that give a text and no model (default: none).")
    imp.add_argument("--source", default=None, help="Source of rows without one (default import).")

    queue = add_command(sub, "queue", cmd_queue,
                        help="Logged predictions nobody labelled yet, most uncertain first (smallest margin between "
                             "the two most probable labels).")
    queue.add_argument("-m", "--model", required=True, help="Fine-tuned classification model id.")
    queue.add_argument("--limit", type=int, default=20, help="How many (default 20).")
    queue.add_argument("--since", default=None, help="Only predictions from then on (ISO time, 7d, ...; default: all).")
    queue.add_argument("--json", action="store_true", help="Print JSON (with the whole prompts).")

    export = add_command(
        sub, "export", cmd_export, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="Write labelled predictions as prompt/completion JSONL (the model's own format) for continued training.",
        epilog="Writes DIR/train.jsonl, DIR/heldout.jsonl and DIR/provenance.json. Then:\n"
               "  tunelab api fine_tunes.create -m MODEL -t DIR/train.jsonl\n"
               "  tunelab compare MODEL NEW_MODEL -f DIR/heldout.jsonl")
    export.add_argument("-m", "--model", required=True, help="Fine-tuned model id.")
    export.add_argument("--out", required=True, metavar="DIR", help="Output folder.")
    export.add_argument("--holdout", type=float, default=0.2,
                        help="Share held out for `compare`, stratified by label (default 0.2; 0 for none).")
    export.add_argument("--seed", type=int, default=42, help="Seed of the held-out split (default 42).")
    export.add_argument("--corrections-only", action="store_true",
                        help="Only examples whose label differs from the model's prediction.")
    export.add_argument("--since", default=None, help="Only feedback given from then on (ISO time, 30d, ...; default: all).")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def cmd_add(args: argparse.Namespace) -> int:
    from tunelab.monitoring.feedback import add_feedback
    from tunelab.store import Store

    result = add_feedback(Store(), label=args.label, response_id=args.response_id, index=args.index,
                          model=args.model, text=args.text, source=args.source or "cli")
    record = result.feedback
    about = f"{record.response_id}/{record.prompt_index}" if record.response_id else "a text"
    verdict = ""
    if result.correct is not None:
        verdict = (" (the model was right)" if result.correct
                   else f" (the model had said {result.prediction.prediction!r})")
    print(f"Recorded {record.id}: {record.label!r} for {about} of {record.model}{verdict}.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from tunelab.monitoring.feedback import import_feedback
    from tunelab.store import Store

    require_paths(("feedback file", args.file))
    result = import_feedback(Store(), args.file, model=args.model, source=args.source)
    models = sorted({r.model for r in result.records})
    print(f"Imported {len(result.records)} label(s) from {args.file}"
          + (f" for {', '.join(models)}" if models else "")
          + (f"; {result.already_recorded} row(s) skipped, their source had already given that label"
             if result.already_recorded else "")
          + (f"; {result.superseded} row(s) skipped, a later line of the same source relabels the same "
             "prediction or text" if result.superseded else "") + ".")
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    from tunelab.monitoring.feedback import review_queue
    from tunelab.monitoring.report import parse_time
    from tunelab.store import Store

    records = review_queue(Store(), args.model, limit=args.limit, since=parse_time(args.since))
    if args.json:
        print_json([r.__dict__ for r in records])
        return 0
    if not records:
        print(f"Nothing to review: every logged prediction of {args.model} has feedback (or none was logged).")
        return 0
    rows = []
    for r in records:
        top = sorted((r.label_probs or {}).items(), key=lambda kv: -kv[1])[:2]
        rows.append([f"{r.response_id}", str(r.prompt_index), f"{r.margin:.3f}",
                     " / ".join(f"{label.strip()} {p:.2f}" for label, p in top),
                     (r.prompt or "(text not kept)").replace("\n", " ")])
    print(format_columns(["id", "index", "margin", "top two", "prompt"], rows, cut_middle=False, width=140))
    print("\nLabel them with `tunelab feedback add --id ID --index N --label LABEL`, or a file and "
          "`tunelab feedback import FILE`.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tunelab.monitoring.feedback import export_feedback
    from tunelab.monitoring.report import parse_time
    from tunelab.store import Store

    result = export_feedback(Store(), args.model, args.out, holdout=args.holdout, seed=args.seed,
                             corrections_only=args.corrections_only, since=parse_time(args.since))
    c = result.counts
    unserved = c["examples"] - c["corrections"] - c["confirmations"]  # labels for a text, with no prediction
    texts = f", {unserved} for a text never served" if unserved else ""
    print(f"Exported {c['examples']} labelled example(s) of {args.model} "
          f"({c['corrections']} correction(s), {c['confirmations']} confirmation(s){texts}) "
          f"from {c['feedback']} feedback row(s).")
    skipped = {k.removeprefix("skipped_").replace("_", " "): v for k, v in c.items() if k.startswith("skipped_")}
    if skipped:
        print("Left out: " + ", ".join(f"{v} {k}" for k, v in skipped.items()) + ".")
    for note in result.notes:
        print(f"Note: {note}.")
    sep = result.separator.encode("unicode_escape").decode() if result.separator else "(none)"
    print(f"Prompt format: the model's separator {sep}; completions are its labels as written.")
    for part, path in result.files.items():
        extra = f" ({c[part]} rows)" if part in ("train", "heldout") else ""
        print(f"  {path}{extra}")
    print("\nContinue training the model on them, then compare old and new on the held-out part:")
    print(f"  tunelab api fine_tunes.create -m {args.model} -t {result.files['train']}")
    if "heldout" in result.files:
        print(f"  tunelab compare {args.model} NEW_MODEL -f {result.files['heldout']}")
    return 0
