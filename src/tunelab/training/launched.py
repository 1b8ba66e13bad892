"""Entry point of each training process under `accelerate launch` (see training/distributed.py):
`python -m tunelab.training.launched JOB_ID [--worker-id ID]`. The job was claimed by the worker
that launched it; the store and artifact root come from TUNELAB_DATABASE_URL and TUNELAB_HOME."""

from __future__ import annotations

import argparse

from tunelab.store import Store
from tunelab.store.records import RUNNING
from tunelab.training.distributed import finish, process_alive
from tunelab.training.runner import run_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunelab.training.launched")
    parser.add_argument("job_id")
    parser.add_argument("--worker-id")
    parser.add_argument("--worker-pid", type=int)
    args = parser.parse_args(argv)
    store = Store()
    job = store.get_job(args.job_id)
    if job.status != RUNNING or (args.worker_id and job.worker_id != args.worker_id):
        # The launching worker lost the job in the meantime; whoever holds it now runs it.
        return 0

    def abandoned() -> bool:
        # The worker that launched these processes holds the job's lease. Killed (kill -9), it can no
        # longer stop them, and another worker will resume the job once the lease runs out: stop first.
        if args.worker_pid and not process_alive(args.worker_pid):
            return True
        return bool(args.worker_id) and store.get_job(job.id).worker_id != args.worker_id

    run_job(store, job, abandoned=abandoned)
    finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
