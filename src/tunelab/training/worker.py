"""The job worker: a process separate from the CLI and the server that runs queued jobs.

How workers share the queue depends on the store:

- SQLite (the default, one machine): one worker per TUNELAB_HOME holds an exclusive lock on
  `worker.lock` (beside the database instead when TUNELAB_DATABASE_URL names a SQLite file elsewhere,
  which several homes may share). Because of that lock, a job found `running` when a worker starts belongs to a
  worker that died (e.g. kill -9): it is put back in the queue to resume from its last checkpoint,
  or failed with the reason after too many tries.
- PostgreSQL (several workers, on one machine or many): no file lock. Workers claim jobs with row
  locks (`FOR UPDATE SKIP LOCKED`), each renews a lease by heartbeating its own row, and a job whose
  worker's heartbeat is older than the lease (`TUNELAB_LEASE_SECONDS`, default 60) is re-queued by
  any other worker and resumed from its last checkpoint. Job files, checkpoints and models live
  under TUNELAB_HOME, which every worker must see (a shared folder).

`ensure_worker()` starts one in the background when none is running; it exits once idle.
`tunelab worker` (run_worker) runs one in the foreground: one per machine or GPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from tunelab.errors import ConflictError, InvalidInputError
from tunelab.store import JobRecord, Store
from tunelab.store.records import FAILED, PAUSED, QUEUED, RUNNING

MAX_ATTEMPTS = 3
IDLE_EXIT_SECONDS = float(os.environ.get("TUNELAB_WORKER_IDLE", "10"))
LAUNCHERS = ("inprocess", "accelerate")


def lease_seconds() -> float:
    """How long a worker may go without heartbeating before its job is given to another worker."""
    value = os.environ.get("TUNELAB_LEASE_SECONDS", "60")
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidInputError(f"TUNELAB_LEASE_SECONDS must be a number of seconds, got {value!r}.") from None
    if seconds <= 0:
        raise InvalidInputError(f"TUNELAB_LEASE_SECONDS must be positive, got {value!r}.")
    return seconds


@dataclass
class WorkerOptions:
    device: str | None = None
    """cpu, cuda or cuda:N; None lets each job pick (the GPU when there is one)."""
    once: bool = False
    """Run at most one job, then exit."""
    idle_exit: float | None = None
    """Exit after this many seconds without a job (None: keep waiting). With `once`, how long to wait
    for a first job (None: do not wait)."""
    launcher: str = "inprocess"
    """inprocess: train in the worker process. accelerate: `accelerate launch --num_processes N`."""
    num_processes: int = 1
    lease_seconds: float = field(default_factory=lease_seconds)
    poll_seconds: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if self.launcher not in LAUNCHERS:
            problems.append(f"launcher must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}")
        if self.num_processes < 1:
            problems.append(f"num_processes must be >= 1, got {self.num_processes}")
        if self.num_processes > 1 and self.launcher != "accelerate":
            problems.append("several processes per job need --launcher accelerate")
        if self.device is not None and not (self.device in ("cpu", "cuda") or _cuda_index(self.device) is not None):
            problems.append(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.lease_seconds <= 0:
            problems.append(f"the lease must be positive, got {self.lease_seconds}")
        if problems:
            raise InvalidInputError("Invalid worker options:", problems=problems)


Report = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# -- the SQLite path: one worker per TUNELAB_HOME ------------------------------------------------------

def _lock_path(store: Store) -> Path:
    """`worker.lock` in TUNELAB_HOME; beside the database when TUNELAB_DATABASE_URL puts the SQLite file
    elsewhere, so that two homes sharing that file still get one worker (a second one would take the
    first one's running job for an orphan and run it too)."""
    default = store.home / "worker.lock"
    database = _sqlite_file(store)
    if database is None or os.path.realpath(database) == os.path.realpath(store.home / "tunelab.db"):
        return default
    return database.with_name(database.name + ".worker.lock")


def _sqlite_file(store: Store) -> Path | None:
    database = store.engine.url.database
    return Path(database) if database and database != ":memory:" and not database.startswith("file:") else None


def sqlite_scope(store: Store) -> str:
    """What one SQLite worker serves, for messages: the home, or the database file other homes may share."""
    if _lock_path(store) == store.home / "worker.lock":
        return str(store.home)
    return f"the SQLite database {_sqlite_file(store)}"


def worker_running(store: Store) -> bool:
    if store.shared:
        return bool(store.list_workers(alive_within=lease_seconds()))
    with open(_lock_path(store), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def ensure_worker(store: Store) -> int | None:
    """Start a background worker unless one is running (on a shared store: unless some worker, on
    any machine, heartbeats). Returns the new pid, if any."""
    if worker_running(store):
        return None
    log = store.home / "logs" / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TUNELAB_HOME=str(store.home))
    if store.shared:
        env["TUNELAB_DATABASE_URL"] = store.engine.url.render_as_string(hide_password=False)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tunelab.training.worker"], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    # Reap it when it exits: a long-lived parent (tunelab serve) otherwise keeps a zombie per worker.
    threading.Thread(target=proc.wait, name=f"reap-worker-{proc.pid}", daemon=True).start()
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
            has_ckpt = _has_checkpoint(store, job)
            store.add_event(job.id, f"The worker (pid {job.worker_pid}) stopped during the job; re-queued to "
                                    + ("resume from its last checkpoint." if has_ckpt else "start again (no checkpoint yet)."),
                            level="warning")
            store.update_job(job.id, status=QUEUED, worker_pid=None)
        recovered.append(job.id)
    # A job paused while its worker died before handing it back: resumable again (from its last checkpoint).
    for job in store.list_jobs(status=PAUSED):
        if job.worker_pid is not None or job.worker_id is not None:
            store.update_job(job.id, worker_pid=None, worker_id=None)
    return recovered


def _has_checkpoint(store: Store, job: JobRecord) -> bool:
    return (store.job_dir(job.id) / "resume" / "position.json").exists()


def serve_forever(store: Store, idle_exit: float = IDLE_EXIT_SECONDS) -> None:
    """The background worker of ensure_worker(): runs queued jobs until idle for `idle_exit` seconds."""
    run_worker(store, WorkerOptions(idle_exit=idle_exit), busy_ok=True)


def run_worker(store: Store, options: WorkerOptions, report: Report = _quiet, *, busy_ok: bool = False) -> int:
    """Run queued jobs as `options` say; returns how many this worker ran. On SQLite a second worker
    for the same TUNELAB_HOME raises ConflictError (or, with busy_ok, returns 0 at once)."""
    _use_device(options.device)
    if store.shared:
        return _serve_shared(store, options, report)
    with open(_lock_path(store), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if busy_ok:
                return 0  # another worker owns this home
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise ConflictError(f"Another worker (pid {holder}) already serves {sqlite_scope(store)}.",
                                hint="A SQLite store has one worker (per TUNELAB_HOME, or per database file that "
                                     "TUNELAB_DATABASE_URL names). For several workers, put the store on "
                                     "PostgreSQL (TUNELAB_DATABASE_URL=postgresql://…).") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        served = sqlite_scope(store)
        report(f"Worker (pid {os.getpid()}) serving {served} (SQLite: the only worker for this "
               + ("home)." if served == str(store.home) else "database)."))
        for job_id in recover_orphans(store):
            report(f"Recovered {job_id} from a worker that stopped during it.")
        return _loop(store, options, report, lease=None)


# -- the PostgreSQL path: leases -------------------------------------------------------------------------

class Lease:
    """This worker's registration on a shared store, renewed by a heartbeat thread every quarter of
    the lease. `lost` is set once it could not be renewed: another worker may have taken the job, so
    this one must stop it and write nothing more about it."""

    def __init__(self, store: Store, options: WorkerOptions):
        self.store = store
        self.options = options
        self.seconds = options.lease_seconds
        self.interval = max(0.2, min(15.0, self.seconds / 4))
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.worker_id = ""
        self.register()

    def register(self) -> None:
        self.close(stop_row=False)
        record = self.store.register_worker(device=self.options.device, launcher=self.options.launcher)
        self.worker_id = record.id
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(record.id, self.lost, self._stop),
                                        name="tunelab-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self, worker_id: str, lost: threading.Event, stop: threading.Event) -> None:
        last_ok = time.monotonic()
        while not stop.wait(self.interval):
            try:
                ok = self.store.heartbeat_worker(worker_id)
            except Exception:  # noqa: BLE001 - the database is unreachable for now; retried until the lease runs out
                ok = time.monotonic() - last_ok < self.seconds
            else:
                last_ok = time.monotonic() if ok else last_ok
            if not ok:
                lost.set()
                return

    def close(self, stop_row: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if stop_row and self.worker_id:
            with contextlib.suppress(Exception):  # exiting anyway; the lease runs out by itself
                self.store.stop_worker(self.worker_id)


def check_shared_home(store: Store) -> None:
    """A worker on a shared store must see the store's TUNELAB_HOME at the same path as the machines that
    upload the files: otherwise it would fail each job it takes ("no such file") or keep the job's
    checkpoints and model in a folder no other machine sees. Checked before it registers: one of the
    last uploaded files must be readable under this worker's TUNELAB_HOME (one, so that a single client
    with another TUNELAB_HOME does not stop every worker)."""
    recent = store.recent_uploads(20)
    if not recent:
        return  # nothing uploaded yet: nothing to compare with
    home = os.path.realpath(store.home)
    roots = [Path(r.path).parent.parent for r in recent]  # <TUNELAB_HOME>/files/<file id>.<ext>
    if any(os.path.realpath(root) == home and Path(r.path).is_file() for root, r in zip(roots, recent)):
        return
    root = Counter(roots).most_common(1)[0][0]
    example = next(r for r, where in zip(recent, roots) if where == root)
    fix = (f"Mount the shared folder at {root} on this machine and set TUNELAB_HOME={root} (every machine must "
           "see it at the same path; see `tunelab worker --help`). No job was taken.")
    if os.path.realpath(root) != home:
        raise InvalidInputError(f"This worker's TUNELAB_HOME ({store.home}) is not the store's shared folder: the "
                                f"store's files are in {root} (e.g. {example.id}, {example.path}); jobs run here "
                                "would fail or keep their models where the other machines cannot see them.", hint=fix)
    raise InvalidInputError(f"This worker's TUNELAB_HOME ({store.home}) does not hold the store's files: "
                            f"{example.id}, for one, is {example.path}, which this machine cannot read (is the "
                            "shared folder mounted here?).", hint=fix)


def _serve_shared(store: Store, options: WorkerOptions, report: Report) -> int:
    check_shared_home(store)
    lease = Lease(store, options)
    report(f"Worker {lease.worker_id} serving {_store_name(store)} (lease {options.lease_seconds:g} s"
           + (f", device {options.device}" if options.device else "")
           + (f", {options.num_processes} processes per job via accelerate launch" if options.launcher == "accelerate" else "")
           + ").")
    try:
        return _loop(store, options, report, lease=lease)
    finally:
        lease.close()


def release_expired(store: Store, lease_s: float, report: Report = _quiet) -> list[str]:
    """Re-queue (or fail, after MAX_ATTEMPTS) the jobs of workers whose lease ran out, with an event
    on each job saying so."""
    released = []
    for job, status in store.release_expired_jobs(lease_s, MAX_ATTEMPTS):
        who = job.worker_id or f"pid {job.worker_pid}"
        if status == FAILED:
            store.add_event(job.id, f"The worker ({who}) stopped heartbeating during the job {job.attempts} times; "
                                    "giving up.", level="error")
        else:
            store.add_event(job.id, f"The worker ({who}) stopped heartbeating for over {lease_s:g} s; re-queued to "
                                    + ("resume from its last checkpoint." if _has_checkpoint(store, job)
                                       else "start again (no checkpoint yet)."), level="warning")
        report(f"{job.id}: its worker ({who}) stopped heartbeating; job {'failed' if status == FAILED else 're-queued'}.")
        released.append(job.id)
    return released


# -- the loop both paths share -------------------------------------------------------------------------

def _loop(store: Store, options: WorkerOptions, report: Report, lease: Lease | None) -> int:
    ran = 0
    idle_since = time.monotonic()
    while True:
        if lease is not None:
            if lease.lost.is_set():
                old = lease.worker_id
                lease.register()
                report(f"Worker {old} lost its lease (no heartbeat for {lease.seconds:g} s); "
                       f"registered again as {lease.worker_id}.")
            try:
                release_expired(store, lease.seconds, report)
            except DBAPIError as exc:  # e.g. a deadlock PostgreSQL broke, or the database restarting
                report(f"Could not check for expired leases this time ({type(exc.orig).__name__}); retrying.")
        try:
            job = store.claim_next_job(os.getpid(), lease.worker_id if lease else None)
        except DBAPIError as exc:
            if lease is None:
                raise
            # A shared database restarting or briefly unreachable: keep the worker, try again.
            report(f"Could not reach the database to claim a job ({type(exc.orig).__name__}); retrying.")
            time.sleep(max(options.poll_seconds, 1.0))
            continue
        if job is None:
            waited = time.monotonic() - idle_since
            if options.once and (options.idle_exit is None or waited > options.idle_exit):
                return ran
            if options.idle_exit is not None and waited > options.idle_exit:
                return ran
            time.sleep(options.poll_seconds)
            continue
        report(f"{job.id}: started (attempt {job.attempts}).")
        done = _run_claimed(store, job, options, lease)
        if lease is not None:
            with contextlib.suppress(DBAPIError):  # only the --list view; the next claim overwrites it anyway
                store.worker_finished_job(lease.worker_id, job.id)
        if done.status == RUNNING:
            report(f"{job.id}: stopped; this worker lost its lease, and the worker holding the job now finishes it.")
        else:
            report(f"{job.id}: {done.status}" + (f" ({done.fine_tuned_model})" if done.fine_tuned_model else "")
                   + (f": {done.error.get('message')}" if done.error else "") + ".")
        ran += 1
        if options.once:
            return ran
        idle_since = time.monotonic()


def _run_claimed(store: Store, job: JobRecord, options: WorkerOptions, lease: Lease | None) -> JobRecord:
    try:
        if options.launcher == "accelerate":
            return _run_launched(store, job, options, lease)
        from tunelab.training.runner import run_job

        return run_job(store, job, abandoned=lease.lost.is_set if lease else None)
    except BaseException:
        # Ctrl-C or SIGTERM: the job did nothing wrong, so it goes back to the queue (resuming from its
        # last checkpoint) without counting the attempt.
        if store.hand_back_job(job.id, lease.worker_id if lease else None):
            store.add_event(job.id, f"The worker (pid {os.getpid()} on {socket.gethostname()}) was stopped; the job "
                                    "is back in the queue and resumes from its last checkpoint.", level="warning")
        raise


def _run_launched(store: Store, job: JobRecord, options: WorkerOptions, lease: Lease | None) -> JobRecord:
    """Train under `accelerate launch` in a process group of its own, while this process keeps the
    lease. If the lease is lost, the whole group is stopped."""
    from tunelab.training.distributed import launch_command

    work = store.job_dir(job.id)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "launch.log"
    env = dict(os.environ, TUNELAB_HOME=str(store.home),
               TUNELAB_DATABASE_URL=store.engine.url.render_as_string(hide_password=False))
    if options.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # accelerate picks gloo on CPU only when it sees no GPU
    cmd = launch_command(job.id, num_processes=options.num_processes, worker_id=lease.worker_id if lease else None,
                         worker_pid=os.getpid())
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    try:
        while proc.poll() is None:
            if lease is not None and lease.lost.is_set():
                _stop_group(proc)
                return store.get_job(job.id)
            time.sleep(0.5)
    except BaseException:
        _stop_group(proc)
        raise
    after = store.get_job(job.id)
    if after.status == RUNNING and (lease is None or after.worker_id == lease.worker_id):
        message = (f"The training processes (accelerate launch, {options.num_processes} processes) exited with "
                   f"code {proc.returncode} before the job ended; their output is in {log}.")
        store.add_event(job.id, f"Job failed: {message}", level="error")
        after = store.update_job(job.id, status=FAILED, finished_at=int(time.time()),
                                 error={"code": "launch_failed", "message": message, "param": None})
    return after


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- devices -----------------------------------------------------------------------------------------

def _cuda_index(device: str) -> int | None:
    head, _, index = device.partition(":")
    return int(index) if head == "cuda" and index.isdigit() else None


def _use_device(device: str | None) -> None:
    """Pin this worker (and the processes it launches) to one device. cuda:N is done by making GPU N
    the only one the process sees, because Accelerate places a single process on the first visible GPU."""
    if device is None:
        return
    if device == "cpu":
        os.environ["TUNELAB_DEVICE"] = "cpu"
        return
    index = _cuda_index(device)
    if index is not None:
        visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)
    os.environ["TUNELAB_DEVICE"] = "cuda"


def _store_name(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=True)


def main() -> int:
    serve_forever(Store())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
