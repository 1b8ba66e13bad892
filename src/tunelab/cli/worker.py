"""`tunelab worker`: run queued fine-tuning jobs in the foreground, one worker per machine or GPU.

With the default SQLite store one worker serves a TUNELAB_HOME (and `fine_tunes.create` starts one
in the background by itself). With the store on PostgreSQL (TUNELAB_DATABASE_URL), start one on each
machine or GPU; they share the queue, and a job whose worker dies resumes on another.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from tunelab.cli.common import add_command, format_columns
from tunelab.store import Store
from tunelab.training.worker import LAUNCHERS, WorkerOptions, lease_seconds, run_worker


def register(sub) -> None:
    parser = add_command(
        sub, "worker", cmd_worker,
        "Run queued fine-tuning jobs here until stopped (one worker per machine or GPU).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Several workers need the store on PostgreSQL (TUNELAB_DATABASE_URL=postgresql://…) and the same\n"
               "TUNELAB_HOME folder on every machine (a shared folder). Ctrl-C or SIGTERM stops the worker and puts\n"
               "its running job back in the queue; another worker resumes it from its last checkpoint.\n\n"
               "Examples:\n"
               "  tunelab worker --device cuda:0            # one per GPU\n"
               "  tunelab worker --device cpu --once        # run one job, then exit\n"
               "  tunelab worker --launcher accelerate --num-processes 2   # each job in 2 processes\n"
               "  tunelab worker --list                     # the workers serving this store")
    parser.add_argument("--device", metavar="DEVICE",
                        help="The device: cpu, cuda or cuda:N (default: each job uses the GPU when there is one, else the CPU).")
    parser.add_argument("--once", action="store_true",
                        help="Run one job, then exit (waiting up to --idle-exit seconds for one to be queued).")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="Exit after this many seconds without a job (default: never; with --once, do not wait).")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="inprocess",
                        help="How each job trains: inprocess, in the worker process; accelerate, under "
                             "`accelerate launch` (default: inprocess).")
    parser.add_argument("--num-processes", type=int, default=1, metavar="N",
                        help="Training processes per job with --launcher accelerate: the batch is split across "
                             "them (default: 1).")
    parser.add_argument("--lease", type=float, metavar="SECONDS",
                        help="Seconds without a heartbeat after which a worker's job goes to another worker "
                             "(default: TUNELAB_LEASE_SECONDS, else 60).")
    parser.add_argument("--quiet", action="store_true", help="Print nothing while running.")
    parser.add_argument("--list", action="store_true",
                        help="List the workers serving this store (PostgreSQL), then exit.")


def cmd_worker(args: argparse.Namespace) -> int:
    store = Store()
    if args.list:
        return _list(store)
    options = WorkerOptions(device=args.device, once=args.once, idle_exit=args.idle_exit, launcher=args.launcher,
                            num_processes=args.num_processes,
                            lease_seconds=args.lease if args.lease is not None else lease_seconds())

    def report(message: str) -> None:
        if not args.quiet:
            print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}", flush=True)

    def stop(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        ran = run_worker(store, options, report)
    except _Terminated:
        report("Stopped by SIGTERM (a job it was running, if any, is back in the queue).")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    report(f"Worker exiting after {ran} job(s).")
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, docker stop, kill): the same clean stop as Ctrl-C, which hands the running job
    back to the queue, but an ordinary exit (0), as service managers expect."""


def _list(store: Store) -> int:
    if not store.shared:
        from tunelab.training.worker import sqlite_scope, worker_running

        state = "running" if worker_running(store) else "not running"
        scope = sqlite_scope(store)
        print(f"SQLite store: one worker per TUNELAB_HOME ({scope}); it is {state}." if scope == str(store.home)
              else f"SQLite store: one worker for {scope}; it is {state}.")
        return 0
    workers = store.list_workers(include_stopped=False)
    if not workers:
        print("No worker is serving this store.", file=sys.stderr)
        return 0
    now = store.clock()  # heartbeats are on the database's clock: this machine's may be off
    lease = lease_seconds()
    print(format_columns(["ID", "HOST", "DEVICE", "LAUNCHER", "HEARTBEAT", "JOB"],
                         [[w.id, f"{w.host} (pid {w.pid})", w.device or "auto", w.launcher or "",
                           heartbeat_text(now - w.heartbeat_at, lease), w.job_id or "-"] for w in workers]))
    return 0


def heartbeat_text(age: float, lease: float) -> str:
    """A worker heartbeats every quarter of the lease, so one silent for more than half of it has
    missed two beats: most likely killed or frozen, which `--list` should say before the lease runs
    out and another worker declares it lost."""
    age = max(0.0, age)
    if age <= lease / 2:
        return f"{age:.0f} s ago"
    if age <= lease:
        return f"{age:.0f} s ago (silent: declared lost in {lease - age:.0f} s unless it beats)"
    return f"{age:.0f} s ago (lease of {lease:g} s expired: lost; a worker re-queues its job)"

