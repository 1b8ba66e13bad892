"""`tunelab logs`: the prediction log that `tunelab serve` keeps (list, prune)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from tunelab.cli.common import add_command, format_columns, print_json


def register(subparsers) -> None:
    logs = subparsers.add_parser("logs", help="The prediction log of `tunelab serve`: list and prune it.",
                                 description="The prediction log of `tunelab serve`: list and prune it.")
    sub = logs.add_subparsers(dest="logs_command", metavar="COMMAND")
    ls = add_command(sub, "list", cmd_list,
                     help="Models in the log with their counts, or with -m the latest predictions of one model.")
    ls.add_argument("-m", "--model", default=None, help="Show this model's latest predictions (default: list the models).")
    ls.add_argument("--limit", type=int, default=20, help="How many predictions (default 20).")
    ls.add_argument("--json", action="store_true", help="Print JSON.")
    prune = add_command(sub, "prune", cmd_prune,
                        help="Delete logged predictions older than --keep-days (what `tunelab serve --log-keep-days` "
                             "does hourly).")
    prune.add_argument("--keep-days", type=float, required=True, help="Keep the predictions of this many days.")
    prune.add_argument("-m", "--model", default=None, help="Only this model's predictions (default: every model's).")
    prune.add_argument("--feedback", action="store_true",
                       help="Delete feedback given before then too (kept by default: it is training data).")
    prune.add_argument("--vacuum", action="store_true",
                       help="Then give the freed space back: SQLite's file shrinks (VACUUM rewrites it, writes wait "
                            "meanwhile); PostgreSQL reuses it (default: the space is reused by new rows, the file "
                            "does not shrink).")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def cmd_list(args: argparse.Namespace) -> int:
    from tunelab.store import Store
    from tunelab.store.predictions import PredictionLog

    log = PredictionLog(Store())
    if args.model is None:
        models = log.models()
        if args.json:
            print_json([{"model": m, "predictions": n, "first": _iso(a), "last": _iso(b)} for m, n, a, b in models])
        elif not models:
            print("The prediction log is empty.")
        else:
            print(format_columns(["model", "predictions", "first (UTC)", "last (UTC)"],
                                 [[m, f"{n:,}", _iso(a), _iso(b)] for m, n, a, b in models], right=frozenset({1})))
        return 0
    records = log.predictions(args.model, limit=max(1, args.limit), newest_first=True)
    if args.json:
        print_json([r.__dict__ for r in records])
        return 0
    rows = [[_iso(r.created_at), f"{r.response_id}/{r.prompt_index}", repr(r.prediction) if r.prediction else "—",
             f"{r.top1_prob:.2f}" if r.top1_prob is not None else "—",
             (r.prompt or "(text not kept)").replace("\n", " ")] for r in records]
    print(format_columns(["time (UTC)", "id/index", "prediction", "p", "prompt"], rows, cut_middle=False)
          if rows else f"No logged predictions of {args.model}.")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    import time

    from tunelab.errors import InvalidInputError
    from tunelab.store import Store
    from tunelab.store.predictions import PredictionLog

    if args.keep_days <= 0:
        raise InvalidInputError(f"--keep-days must be positive, got {args.keep_days}.")
    before = time.time() - args.keep_days * 86400
    store = Store()
    n_log, n_fb = PredictionLog(store).prune(before, model=args.model, feedback=args.feedback)
    print(f"Deleted {n_log:,} logged prediction(s)" + (f" and {n_fb:,} feedback row(s)" if args.feedback else "")
          + f" from before {_iso(before)} UTC.")
    if args.vacuum:
        from tunelab.store.maintenance import compact

        done = compact(store)
        if done.bytes_before is None:
            print(f"Vacuumed the prediction log's tables in {done.database}: PostgreSQL reuses the space for new rows.")
        else:
            print(f"Compacted {done.database}: {done.bytes_before / 2**20:,.1f} MB -> {done.bytes_after / 2**20:,.1f} MB.")
    return 0
