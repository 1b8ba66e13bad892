"""The job worker: a process separate from the CLI and the server that runs queued jobs.

One worker per TUNELAB_HOME holds an exclusive lock on `worker.lock`. Because of that lock, a job
found `running` when a worker starts belongs to a worker that died (e.g. kill -9): it is put back
in the queue to resume from its last checkpoint, or failed with the reason after too many tries.
`ensure_worker()` starts one in the background when none is running; it exits once idle.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from tunelab.store import Store
from tunelab.store.records import FAILED, QUEUED, RUNNING

MAX_ATTEMPTS = 3
IDLE_EXIT_SECONDS = float(os.environ.get("TUNELAB_WORKER_IDLE", "10"))


def _lock_path(store: Store) -> Path:
    return store.home / "worker.lock"


def worker_running(store: Store) -> bool:
    with open(_lock_path(store), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def ensure_worker(store: Store) -> int | None:
    """Start a background worker unless one holds the lock. Returns the new pid, if any."""
    if worker_running(store):
        return None
    log = store.home / "logs" / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TUNELAB_HOME=str(store.home))
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tunelab.training.worker"], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    return proc.pid


def recover_orphans(store: Store) -> list[str]:
    """Called while holding the lock: every running job is an orphan of a dead worker."""
    recovered = []
    for job in store.list_jobs(status=RUNNING):
        if job.attempts >= MAX_ATTEMPTS:
            store.add_event(job.id, f"Worker (pid {job.worker_pid}) stopped during the job {job.attempts} times; "
                                    "giving up.", level="error")
            store.update_job(job.id, status=FAILED, finished_at=int(time.time()), error={
                "code": "worker_died", "param": None,
                "message": f"The worker running this job died {job.attempts} times (last pid {job.worker_pid})."})
        else:
            has_ckpt = (store.job_dir(job.id) / "resume" / "position.json").exists()
            store.add_event(job.id, f"The worker (pid {job.worker_pid}) stopped during the job; re-queued to "
                                    + ("resume from its last checkpoint." if has_ckpt else "start again (no checkpoint yet)."),
                            level="warning")
            store.update_job(job.id, status=QUEUED, worker_pid=None)
        recovered.append(job.id)
    return recovered


def serve_forever(store: Store, idle_exit: float = IDLE_EXIT_SECONDS) -> None:
    from tunelab.training.runner import run_job

    with open(_lock_path(store), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another worker owns this home
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        recover_orphans(store)
        idle_since = time.monotonic()
        while True:
            job = store.claim_next_job(os.getpid())
            if job is None:
                if time.monotonic() - idle_since > idle_exit:
                    return
                time.sleep(0.5)
                continue
            run_job(store, job)
            idle_since = time.monotonic()


def main() -> int:
    serve_forever(Store())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
