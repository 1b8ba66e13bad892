"""`tunelab store backup`: a consistent copy of the store's database while jobs run."""

from __future__ import annotations

import argparse

from tunelab.cli.common import add_command
from tunelab.store import Store
from tunelab.store.maintenance import backup


def register(sub) -> None:
    store = sub.add_parser("store", help="The store: backups.", description="The store: backups.")
    verbs = store.add_subparsers(dest="verb", metavar="VERB")
    p = add_command(verbs, "backup", cmd_backup,
                    "Copy the store's SQLite database to FILE, consistently, even while a worker writes "
                    "(PostgreSQL: prints the pg_dump command).")
    p.add_argument("--out", required=True, metavar="FILE", help="The backup file to write.")
    p.add_argument("--force", action="store_true", help="Replace FILE if it exists.")


def cmd_backup(args: argparse.Namespace) -> int:
    result = backup(Store(), args.out, overwrite=args.force)
    rows = ", ".join(f"{n:,} {table}" for table, n in result.counts.items())
    print(f"Backed up the store to {result.path} ({result.bytes:,} bytes; {rows}).")
    print(f"The database holds the records; the files, checkpoints and models are under {result.artifacts}: "
          "copy that folder too.")
    return 0
