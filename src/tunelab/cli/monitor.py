"""`tunelab monitor`: is the served model still seeing what it was trained on, and how well is it
doing? The work is in tunelab.monitoring.report; this module parses, prints and picks the exit
status (3 when a window crossed a threshold, so that cron can alert)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunelab.cli.common import add_command, print_json

EXIT_ALARM = 3


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def register(subparsers) -> None:
    from tunelab.monitoring.thresholds import Thresholds

    d = Thresholds()
    parser = add_command(
        subparsers, "monitor", cmd_monitor,
        help="Watch a served model: volume, latency, label/confidence/text drift, data quality, accuracy "
             "estimated without labels and realized from feedback, per window of the prediction log.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Compares each window of `tunelab serve`'s prediction log with the model's own data: its\n"
               "validation file (else training file), scored once and cached, and its training prompts.\n"
               "Exit status: 0 no window crossed a threshold; 3 at least one did (cron can alert on it);\n"
               "2 bad arguments or an unknown model. Alarms need both significance (p < --alpha) and size\n"
               "(the effect-size threshold), and at least --min-rows predictions in the window.",
    )
    parser.add_argument("-m", "--model", required=True, help="Fine-tuned model id.")
    parser.add_argument("--window", default="1d",
                        help="Window: a duration (30m, 6h, 1d, 1w) or a number of predictions (500). Default 1d.")
    parser.add_argument("--since", default=None,
                        help="Only predictions from then on: ISO date/time (UTC), a duration ago (7d), Unix seconds (default: from the first).")
    parser.add_argument("--until", default=None, help="Only predictions before then (same formats; default: up to now).")
    parser.add_argument("--reference", default=None, metavar="FILE",
                        help="Prompt/completion file to compare with (default: the model's validation file, else its training file).")
    parser.add_argument("--no-text-drift", dest="text_drift", action="store_false",
                        help="Skip the text-drift classifier (the slowest check).")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    parser.add_argument("--plot", default=None, metavar="PNG", help="Also draw the timeline to this PNG (default: no plot).")
    th = parser.add_argument_group("thresholds (a window alarms when it crosses one)")
    th.add_argument("--alpha", type=_fraction, default=d.alpha,
                    help=f"Significance level of the chi-square and KS tests (default {d.alpha}).")
    th.add_argument("--max-label-js", type=_fraction, default=d.max_label_js,
                    help=f"Jensen-Shannon distance of predicted labels vs reference (default {d.max_label_js}).")
    th.add_argument("--max-ks", type=_fraction, default=d.max_ks,
                    help=f"KS statistic of top-1 probabilities vs reference (default {d.max_ks}).")
    th.add_argument("--max-text-auc", type=_fraction, default=d.max_text_auc,
                    help=f"ROC-AUC of telling served from training prompts (default {d.max_text_auc}).")
    th.add_argument("--max-accuracy-drop", type=_fraction, default=d.max_accuracy_drop,
                    help="Estimated accuracy below the reference's estimate by more than this "
                         f"(default {d.max_accuracy_drop}).")
    th.add_argument("--max-realized-drop", type=_fraction, default=d.max_realized_drop,
                    help="Accuracy on feedback below the reference accuracy by more than this (default: no "
                         "alarm; feedback from the review queue is biased towards hard cases).")
    th.add_argument("--max-empty", type=_fraction, default=d.max_empty,
                    help=f"Share of empty prompts (default {d.max_empty}).")
    th.add_argument("--max-non-text", type=_fraction, default=d.max_non_text,
                    help=f"Share of prompts that are mostly not letters (default {d.max_non_text}).")
    th.add_argument("--max-truncated", type=_fraction, default=d.max_truncated,
                    help=f"Share of prompts longer than the model's max_length (default {d.max_truncated}).")
    th.add_argument("--max-duplicates", type=_fraction, default=d.max_duplicates,
                    help=f"Share of prompts seen earlier in the window (default {d.max_duplicates}).")
    th.add_argument("--max-p95-ms", type=_positive, default=d.max_p95_ms,
                    help="95th percentile latency in ms (default: no alarm).")
    th.add_argument("--min-rows", type=int, default=d.min_rows,
                    help=f"Windows with fewer predictions raise no alarm (default {d.min_rows}).")


def cmd_monitor(args: argparse.Namespace) -> int:
    from tunelab.errors import EXIT_USAGE, NotFoundError
    from tunelab.monitoring.report import format_report, monitor, parse_time
    from tunelab.monitoring.thresholds import Thresholds
    from tunelab.store import Store

    thresholds = Thresholds(alpha=args.alpha, max_label_js=args.max_label_js, max_ks=args.max_ks,
                            max_text_auc=args.max_text_auc, max_accuracy_drop=args.max_accuracy_drop,
                            max_realized_drop=args.max_realized_drop, max_empty=args.max_empty,
                            max_non_text=args.max_non_text, max_truncated=args.max_truncated,
                            max_duplicates=args.max_duplicates, max_p95_ms=args.max_p95_ms,
                            min_rows=max(1, args.min_rows))

    def scoring(n: int, path: Path) -> None:
        print(f"Scoring the reference {path} ({n} rows) with {args.model} once; the result is cached.",
              file=sys.stderr)

    try:
        report = monitor(Store(), args.model, window=args.window, since=parse_time(args.since),
                         until=parse_time(args.until), thresholds=thresholds, reference_file=args.reference,
                         text_drift=args.text_drift, on_scoring=scoring)
    except NotFoundError as exc:  # 3 is the alarm here: an unknown model is a usage error
        print(f"Error: {exc.render()}", file=sys.stderr)
        return EXIT_USAGE
    if args.plot:
        from tunelab.monitoring.plots import plot_timeline

        plot_timeline(report, args.plot)
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
        if args.plot:
            print(f"Wrote the timeline to {args.plot}.")
    return EXIT_ALARM if report["alarm"] else 0
