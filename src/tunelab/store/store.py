"""The store's API. SQL goes through SQLAlchemy Core with portable statements, so the same code
runs on SQLite (default) and on PostgreSQL when several workers share one job queue."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError

from tunelab.errors import ConflictError, InvalidInputError, NotFoundError, TunelabError
from tunelab.home import database_url, make_home, tunelab_home
from tunelab.store import ids
from tunelab.store.migrations import migrate
from tunelab.store.records import (
    CANCELLED, FAILED, PAUSED, QUEUED, RUNNING, TERMINAL, VALIDATING,
    CheckpointRecord, EventRecord, FileRecord, JobRecord, ModelRecord, WorkerRecord, decode, encode,
)

MODEL_META_FILE = "tunelab.json"
"""What a model folder holds next to its weights (tunelab.models.loading.META_FILE; the store sits
below the models package and does not import it)."""

# Worker and lease times come from the database's clock on PostgreSQL, so that workers on machines
# whose clocks disagree still agree on whose lease has run out.
_PG_CLOCK = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


def _now() -> int:
    return int(time.time())


class Store:
    def __init__(self, home: Path | None = None, url: str | None = None):
        self.home = make_home(Path(home)) if home else tunelab_home()
        if url is None:
            url = f"sqlite:///{self.home / 'tunelab.db'}" if home else database_url()
        url = _driver_url(url)
        try:
            make_url(url)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise _not_a_url(url) from None
        try:
            # pre_ping: a worker runs for days; a PostgreSQL restart must not leave it with dead connections.
            self.engine = create_engine(url, future=True,
                                        **({} if url.startswith("sqlite") else {"pool_pre_ping": True}))
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:  # a mistyped URL, a driver not installed
            raise _unusable_url(url, exc) from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except DBAPIError as exc:  # not a database, a folder in its place, an unreachable server
            raise _unusable_database(self.engine, exc) from None

    @property
    def shared(self) -> bool:
        """True on PostgreSQL: several workers, on one machine or many, may serve this store at once
        (SQLite has one worker per TUNELAB_HOME)."""
        return self.engine.dialect.name == "postgresql"

    # -- paths -------------------------------------------------------------------------------
    @property
    def files_dir(self) -> Path:
        return self.home / "files"

    def job_dir(self, job_id: str) -> Path:
        return self.home / "jobs" / job_id

    def model_dir(self, model_id: str) -> Path:
        return self.home / "models" / ids.model_dir_name(model_id)

    # -- files -------------------------------------------------------------------------------
    def add_file(self, source: str | Path, *, purpose: str = "fine-tune", filename: str | None = None,
                 n_rows: int | None = None, expires_after: int | None = None) -> FileRecord:
        """Copy a file into the store. `expires_after`: seconds after which it is deleted (OpenAI's
        files `expires_after`), once no unfinished job needs it."""
        source = Path(source)
        file_id = ids.new_id("file")
        # Keep compound suffixes (".jsonl.gz") so readers still recognise the format.
        suffix = "".join(source.suffixes[-2:]) if source.suffix == ".gz" else source.suffix
        dest = self.files_dir / f"{file_id}{suffix or '.jsonl'}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name("." + dest.name + ".tmp")
        try:
            shutil.copyfile(source, tmp)
        except BaseException:  # e.g. a full disk: leave no partial copy behind
            tmp.unlink(missing_ok=True)
            raise
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        tmp.replace(dest)
        now = _now()
        record = FileRecord(id=file_id, filename=filename or source.name, purpose=purpose,
                            bytes=dest.stat().st_size, sha256=digest, path=str(dest), n_rows=n_rows,
                            created_at=now, expires_at=now + int(expires_after) if expires_after else None)
        self._insert("files", record.__dict__)
        return record

    def get_file(self, file_id: str) -> FileRecord:
        if not ids.is_valid_id(file_id, "file"):
            raise NotFoundError(f"No such file: {file_id!r} (file ids look like file-…).")
        self.delete_expired_files()
        row = self._one("SELECT * FROM files WHERE id = :id", id=file_id)
        if row is None:
            raise NotFoundError(f"No such file: {file_id}.", hint="List files with `tunelab api files.list`.")
        return decode(FileRecord, row)

    def list_files(self) -> list[FileRecord]:
        self.delete_expired_files()
        return [decode(FileRecord, r) for r in self._all("SELECT * FROM files ORDER BY created_at DESC, id DESC")]

    def recent_uploads(self, limit: int = 20) -> list[FileRecord]:
        """The files clients uploaded last (not jobs' results, which workers write), newest first: where
        a shared store's files are (`tunelab worker` checks that its TUNELAB_HOME is that folder)."""
        rows = self._all("SELECT * FROM files WHERE purpose <> 'fine-tune-results' "
                         "ORDER BY created_at DESC, id DESC LIMIT :n", n=limit)
        return [decode(FileRecord, r) for r in rows]

    def delete_expired_files(self) -> list[str]:
        """Delete the files whose `expires_at` has passed, except those an unfinished job still reads."""
        rows = self._all(
            "SELECT * FROM files f WHERE f.expires_at IS NOT NULL AND f.expires_at <= :now AND NOT EXISTS ("
            "SELECT 1 FROM jobs j WHERE j.status NOT IN (:s, :f, :c) "
            "AND (j.training_file = f.id OR j.validation_file = f.id))",
            now=_now(), s=TERMINAL[0], f=TERMINAL[1], c=TERMINAL[2])
        for row in rows:
            record = decode(FileRecord, row)
            self._exec("DELETE FROM files WHERE id = :id", id=record.id)
            Path(record.path).unlink(missing_ok=True)
        return [decode(FileRecord, r).id for r in rows]

    def delete_file(self, file_id: str) -> FileRecord:
        record = self.get_file(file_id)
        self._exec("DELETE FROM files WHERE id = :id", id=file_id)
        Path(record.path).unlink(missing_ok=True)
        return record

    # -- jobs --------------------------------------------------------------------------------
    def create_job(self, *, model: str, base_model: str, method: str, training_file: str,
                   validation_file: str | None, hyperparams: dict, options: dict, seed: int,
                   parent_model: str | None = None, suffix: str | None = None,
                   organization_id: str = "personal", status: str = QUEUED) -> JobRecord:
        now = _now()
        values = dict(
            id=ids.new_id("ftjob"), created_at=now, updated_at=now, started_at=None, finished_at=None,
            status=status, model=model, base_model=base_model, parent_model=parent_model, method=method,
            training_file=training_file, validation_file=validation_file, hyperparams=hyperparams,
            options=options, organization_id=organization_id, suffix=suffix, seed=seed,
            fine_tuned_model=None, result_file=None, error=None, trained_tokens=None,
            trained_examples=None, train_seconds=None, cancel_requested=False, worker_pid=None,
            heartbeat_at=None, attempts=0, enqueued_at=time.time(),
        )
        self._insert("jobs", values)
        return JobRecord(**values)

    def get_job(self, job_id: str) -> JobRecord:
        given = job_id  # errors name the job as the caller did (ft-… stays ft-…)
        job_id = ids.normalize_job_id(job_id)
        row = None
        if ids.is_valid_id(job_id, "ftjob"):
            row = self._one("SELECT * FROM jobs WHERE id = :id", id=job_id)
        if row is None:
            raise NotFoundError(f"No such fine-tuning job: {given}.",
                                hint="List jobs with `tunelab api fine_tunes.list`.")
        return decode(JobRecord, row)

    def list_jobs(self, *, after: str | None = None, limit: int | None = None,
                  status: str | None = None) -> list[JobRecord]:
        """Newest first; `after` is a job id (exclusive cursor), as in OpenAI's list endpoints."""
        sql = "SELECT * FROM jobs"
        params: dict[str, Any] = {}
        where = []
        if status:
            where.append("status = :status")
            params["status"] = status
        if after:
            cursor = self.get_job(after)
            where.append("(created_at < :c OR (created_at = :c AND id < :cid))")
            params.update(c=cursor.created_at, cid=cursor.id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit:
            sql += " LIMIT :limit"
            params["limit"] = int(limit)
        return [decode(JobRecord, r) for r in self._all(sql, **params)]

    def update_job(self, job_id: str, *, unless_status: str | None = None, **fields: Any) -> JobRecord:
        """Set `fields`; with `unless_status`, only if the job does not have that status by then (checked
        in the same statement: a cancel may land between a read and a write). The job as it is now."""
        fields["updated_at"] = _now()
        values = encode(fields)
        sets = ", ".join(f"{k} = :{k}" for k in values)
        sql = f"UPDATE jobs SET {sets} WHERE id = :id_"
        if unless_status is not None:
            sql += " AND status <> :unless_status_"
            values["unless_status_"] = unless_status
        self._exec(sql, id_=job_id, **values)
        return self.get_job(job_id)

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued, paused or running job: its status is `cancelled` at once, as OpenAI answers;
        a running job's loop sees the request within about a second and stops (its runner never
        overwrites the status with an outcome)."""
        job = self.get_job(job_id)
        if job.is_terminal:
            # Named as the caller named it (ft-… or ftjob-…): both spellings are the same job.
            name = job_id if job_id in (job.id, job.legacy_id) else job.id
            raise ConflictError(f"Job {name} has already ended ({job.status}); only running, queued or paused jobs "
                                "can be cancelled.")
        with self.engine.begin() as conn:
            changed = conn.execute(text(
                "UPDATE jobs SET cancel_requested = 1, status = :c, finished_at = :t, updated_at = :t "
                "WHERE id = :id AND status = :s"), {"c": CANCELLED, "s": job.status, "t": _now(), "id": job.id}).rowcount
        if not changed:
            return self.request_cancel(job.id)  # it moved on meanwhile (e.g. it started, or ended): look again
        # A running job's runner adds "Job cancelled." once its loop has stopped.
        self.add_event(job.id, "Cancellation requested." if job.status == RUNNING else "Job cancelled before it started."
                       if job.status in (QUEUED, VALIDATING) else "Job cancelled while paused.")
        return self.get_job(job.id)

    def request_pause(self, job_id: str) -> JobRecord:
        """Pause a queued or running job. A running one saves a resumable checkpoint at its next step
        (within about a second) and hands the job back; `request_resume` queues it again and it goes on
        from that checkpoint."""
        job = self.get_job(job_id)
        if job.status not in (QUEUED, RUNNING):
            raise ConflictError(f"Job {job.id} is {job.status}; only queued or running jobs can be paused.")
        with self.engine.begin() as conn:
            changed = conn.execute(text("UPDATE jobs SET status = :p, updated_at = :t WHERE id = :id AND status = :s"),
                                   {"p": PAUSED, "t": _now(), "id": job.id, "s": job.status}).rowcount
        if not changed:
            return self.request_pause(job.id)  # it moved on meanwhile (queued -> running): look again
        self.add_event(job.id, "Job paused." if job.status == QUEUED else
                       "Pause requested; the job saves a checkpoint at its next step.")
        return self.get_job(job.id)

    def request_resume(self, job_id: str) -> JobRecord:
        """Queue a paused job again; it continues from the checkpoint it saved when it paused."""
        job = self.get_job(job_id)
        if job.status != PAUSED:
            raise ConflictError(f"Job {job.id} is {job.status}; only paused jobs can be resumed.")
        if job.worker_pid is not None or job.worker_id is not None:
            raise ConflictError(f"Job {job.id} is still saving its checkpoint after the pause; resume it in a "
                                "moment.")
        with self.engine.begin() as conn:
            changed = conn.execute(text("UPDATE jobs SET status = :q, enqueued_at = :e, updated_at = :t "
                                        "WHERE id = :id AND status = :p AND worker_pid IS NULL AND worker_id IS NULL"),
                                   {"q": QUEUED, "p": PAUSED, "e": time.time(), "t": _now(), "id": job.id}).rowcount
        if not changed:
            raise ConflictError(f"Job {job.id} changed while resuming it; look at its status and try again.")
        self.add_event(job.id, "Job resumed; it continues from its last checkpoint.")
        return self.get_job(job.id)

    def claim_next_job(self, worker_pid: int, worker_id: str | None = None) -> JobRecord | None:
        """Atomically move the oldest queued job to running for this worker."""
        if self.shared:
            return self._claim_locked(worker_pid, worker_id)
        queued = self.list_jobs(status=QUEUED)
        for job in sorted(queued, key=lambda j: (j.enqueued_at or j.created_at, j.created_at)):
            with self.engine.begin() as conn:
                claimed = conn.execute(text(
                    "UPDATE jobs SET status = :r, worker_pid = :p, worker_id = :w, heartbeat_at = :h, updated_at = :t, "
                    "started_at = COALESCE(started_at, :t), attempts = attempts + 1 "
                    "WHERE id = :id AND status = :q"),
                    {"r": RUNNING, "p": worker_pid, "w": worker_id, "h": time.time(), "t": _now(), "id": job.id,
                     "q": QUEUED},
                ).rowcount
            if claimed:
                return self.get_job(job.id)
        return None

    def _claim_locked(self, worker_pid: int, worker_id: str | None) -> JobRecord | None:
        """PostgreSQL: lock the oldest queued row, skipping rows another worker is claiming right now,
        so concurrent workers each get a different job without retrying. A worker whose lease was
        declared lost claims nothing until it registers again."""
        with self.engine.begin() as conn:
            if worker_id is not None and conn.execute(text(
                    "SELECT 1 FROM workers WHERE id = :w AND status = :r FOR UPDATE"),
                    {"w": worker_id, "r": RUNNING}).first() is None:
                return None
            row = conn.execute(text(
                "SELECT id FROM jobs WHERE status = :q ORDER BY COALESCE(enqueued_at, created_at), created_at, id "
                "LIMIT 1 FOR UPDATE SKIP LOCKED"), {"q": QUEUED}).first()
            if row is None:
                return None
            conn.execute(text(
                f"UPDATE jobs SET status = :r, worker_pid = :p, worker_id = :w, heartbeat_at = {_PG_CLOCK}, "
                "updated_at = :t, started_at = COALESCE(started_at, :t), attempts = attempts + 1 WHERE id = :id"),
                {"r": RUNNING, "p": worker_pid, "w": worker_id, "t": _now(), "id": row.id})
            if worker_id is not None:
                conn.execute(text("UPDATE workers SET job_id = :j WHERE id = :w"), {"j": row.id, "w": worker_id})
        return self.get_job(row.id)

    def hand_back_job(self, job_id: str, worker_id: str | None) -> bool:
        """Put a running job of this worker back in the queue without counting the attempt (the
        worker was asked to stop; the job did nothing wrong). False if it is no longer this worker's."""
        with self.engine.begin() as conn:
            sql = ("UPDATE jobs SET status = :q, worker_id = NULL, worker_pid = NULL, updated_at = :t, "
                   "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE id = :id AND status = :r")
            params = {"q": QUEUED, "r": RUNNING, "t": _now(), "id": job_id}
            if worker_id is not None:
                sql += " AND worker_id = :w"
                params["w"] = worker_id
            return bool(conn.execute(text(sql), params).rowcount)

    # -- workers (shared stores) ---------------------------------------------------------------
    def _clock(self) -> str:
        return _PG_CLOCK if self.shared else ":now"

    def clock(self) -> float:
        """Now, in seconds since the epoch, on the clock workers' heartbeats use: the database's on
        PostgreSQL (this machine's may be off), this machine's on SQLite."""
        if not self.shared:
            return time.time()
        return float(self._one(f"SELECT {_PG_CLOCK}")[0])

    def register_worker(self, *, device: str | None = None, launcher: str | None = None) -> WorkerRecord:
        worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        with self.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO workers (id, host, pid, device, launcher, status, started_at, heartbeat_at) "
                f"VALUES (:id, :host, :pid, :device, :launcher, :r, {self._clock()}, {self._clock()})"),
                {"id": worker_id, "host": socket.gethostname(), "pid": os.getpid(), "device": device,
                 "launcher": launcher, "r": RUNNING, "now": time.time()})
        return self.get_worker(worker_id)

    def get_worker(self, worker_id: str) -> WorkerRecord:
        row = self._one("SELECT * FROM workers WHERE id = :id", id=worker_id)
        if row is None:
            raise NotFoundError(f"No such worker: {worker_id}.")
        return decode(WorkerRecord, row)

    def list_workers(self, *, include_stopped: bool = False, alive_within: float | None = None) -> list[WorkerRecord]:
        """Registered workers, oldest first: running ones (all of them with include_stopped);
        alive_within keeps those that heartbeated in the last so many seconds."""
        where = [] if include_stopped else ["status = :r"]
        if alive_within is not None:
            where.append(f"heartbeat_at >= {self._clock()} - :within")
        sql = "SELECT * FROM workers" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY started_at, id"
        return [decode(WorkerRecord, r) for r in self._all(sql, r=RUNNING, within=alive_within, now=time.time())]

    def heartbeat_worker(self, worker_id: str) -> bool:
        """Renew this worker's lease (and its running job's heartbeat). False once another worker has
        declared it lost and taken its job: it must stop that job and write nothing more about it."""
        with self.engine.begin() as conn:
            alive = conn.execute(text(
                f"UPDATE workers SET heartbeat_at = {self._clock()} WHERE id = :w AND status = :r"),
                {"w": worker_id, "r": RUNNING, "now": time.time()}).rowcount
        # A transaction of its own: holding the worker's row while waiting for its job's row (which a
        # worker releasing expired jobs may hold, on its way to the worker's row) could deadlock.
        if alive:
            self._exec(f"UPDATE jobs SET heartbeat_at = {self._clock()} WHERE worker_id = :w AND status = :r",
                       w=worker_id, r=RUNNING, now=time.time())
        return bool(alive)

    def worker_finished_job(self, worker_id: str, job_id: str) -> None:
        """The worker is done with `job_id` (whatever its outcome): `tunelab worker --list` no longer
        shows it as the worker's job."""
        self._exec("UPDATE workers SET job_id = NULL WHERE id = :w AND job_id = :j", w=worker_id, j=job_id)

    def stop_worker(self, worker_id: str) -> None:
        self._exec(f"UPDATE workers SET status = 'stopped', stopped_at = {self._clock()}, job_id = NULL "
                   "WHERE id = :w AND status = :r", w=worker_id, r=RUNNING, now=time.time())

    def release_expired_jobs(self, lease_seconds: float, max_attempts: int) -> list[tuple[JobRecord, str]]:
        """Running jobs whose worker has not heartbeated within the lease (killed, frozen, its machine
        gone) or has stopped without them: each goes back to the queue to resume from its last
        checkpoint, or fails once it has had `max_attempts` attempts. Their workers are marked lost.
        Returns (the job as it was, its new status). Safe to call from every worker at once: the rows
        are locked, and a row another worker is releasing is skipped."""
        lock = " FOR UPDATE OF j SKIP LOCKED" if self.shared else ""
        released = []
        with self.engine.begin() as conn:
            rows = conn.execute(text(
                "SELECT j.* FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id WHERE j.status = :r AND ("
                f"(w.id IS NOT NULL AND (w.status <> :r OR w.heartbeat_at < {self._clock()} - :lease)) OR "
                f"(w.id IS NULL AND (j.heartbeat_at IS NULL OR j.heartbeat_at < {self._clock()} - :lease)))" + lock),
                {"r": RUNNING, "lease": float(lease_seconds), "now": time.time()}).all()
            # Worker rows are updated in one order by every releasing worker, so two never deadlock.
            for job in sorted((decode(JobRecord, row) for row in rows), key=lambda j: (j.worker_id or "", j.id)):
                if job.attempts >= max_attempts:
                    error = {"code": "worker_died", "param": None,
                             "message": f"The worker running this job stopped heartbeating {job.attempts} times "
                                        f"(last: {job.worker_id or job.worker_pid})."}
                    conn.execute(text("UPDATE jobs SET status = :f, finished_at = :t, updated_at = :t, error = :e, "
                                      "worker_id = NULL WHERE id = :id"),
                                 {"f": FAILED, "t": _now(), "e": encode({"error": error})["error"], "id": job.id})
                    released.append((job, FAILED))
                else:
                    conn.execute(text("UPDATE jobs SET status = :q, worker_id = NULL, worker_pid = NULL, "
                                      "updated_at = :t WHERE id = :id"), {"q": QUEUED, "t": _now(), "id": job.id})
                    released.append((job, QUEUED))
                if job.worker_id:
                    conn.execute(text("UPDATE workers SET status = 'lost', job_id = NULL WHERE id = :w AND status = :r"),
                                 {"w": job.worker_id, "r": RUNNING})
        return released

    def delete_job(self, job_id: str) -> JobRecord:
        job = self.get_job(job_id)
        if not job.is_terminal:
            raise ConflictError(f"Job {job.id} is {job.status}; cancel it before deleting it.")
        with self.engine.begin() as conn:
            for table in ("job_events", "checkpoints"):
                conn.execute(text(f"DELETE FROM {table} WHERE job_id = :id"), {"id": job.id})
            conn.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job.id})
        shutil.rmtree(self.job_dir(job.id), ignore_errors=True)
        return job

    # -- events ------------------------------------------------------------------------------
    def add_event(self, job_id: str, message: str, *, level: str = "info", data: dict | None = None) -> EventRecord:
        for _ in range(20):
            try:
                with self.engine.begin() as conn:
                    seq = conn.execute(text("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = :j"),
                                       {"j": job_id}).scalar_one()
                    values = dict(id=ids.new_id("ftevent"), job_id=job_id, seq=seq, created_at=_now(),
                                  level=level, message=message, data=data)
                    conn.execute(text("INSERT INTO job_events (id, job_id, seq, created_at, level, message, data) "
                                      "VALUES (:id, :job_id, :seq, :created_at, :level, :message, :data)"),
                                 encode(values))
                return EventRecord(**values)
            except IntegrityError:  # two writers took the same seq; take the next one
                time.sleep(0.01)
        raise RuntimeError("could not append job event")

    def list_events(self, job_id: str, *, after_seq: int = 0, limit: int | None = None,
                    newest_first: bool = False) -> list[EventRecord]:
        sql = "SELECT * FROM job_events WHERE job_id = :j AND seq > :s ORDER BY seq"
        sql += " DESC" if newest_first else ""
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [decode(EventRecord, r) for r in self._all(sql, j=job_id, s=after_seq)]

    # -- checkpoints -------------------------------------------------------------------------
    def add_checkpoint(self, job_id: str, *, step: int, epoch: int, path: str, metrics: dict) -> CheckpointRecord:
        values = dict(id=ids.new_id("ftckpt"), job_id=job_id, step=step, epoch=epoch, path=str(path),
                      metrics=metrics, created_at=_now())
        self._insert("checkpoints", values)
        return CheckpointRecord(**values)

    def list_checkpoints(self, job_id: str) -> list[CheckpointRecord]:
        return [decode(CheckpointRecord, r)
                for r in self._all("SELECT * FROM checkpoints WHERE job_id = :j ORDER BY step", j=job_id)]

    # -- models ------------------------------------------------------------------------------
    def register_model(self, *, base_id: str, built_dir: Path, base_model: str, method: str,
                       labels: list[str] | None, cumulative_epochs: int, parent_id: str | None = None,
                       job_id: str | None = None, organization_id: str = "personal",
                       suffix: str | None = None, meta: dict | None = None,
                       when: datetime | None = None, id_style: str = ids.LEGACY) -> ModelRecord:
        """Move a complete model folder into the store and only then record it, under a legacy id
        `<base>:ft-<org>[:<suffix>]-YYYY-MM-DD-HH-MM-SS` or (`id_style` CURRENT) OpenAI's current
        `ft:<base>:<org>:<suffix>:<id>` (store.ids.new_model_id). Two legacy models finishing in the
        same second get consecutive seconds, so ids stay unique and keep the legacy shape.

        The folder is claimed by renaming into it, which fails when it exists: two workers sharing a
        store (PostgreSQL) finishing in the same second both found the id free, and the second
        deleted the first one's freshly moved folder as a crash's leftover, or failed the job with
        FileExistsError. A folder without a row is a crash's leftover only once it is a minute old."""
        when = when or datetime.now(timezone.utc)
        stamp = int(when.timestamp())
        for attempt in range(3600):
            t = datetime.fromtimestamp(stamp + attempt, tz=timezone.utc)
            model_id = ids.new_model_id(base_id, organization_id, suffix, id_style, t)
            if self._one("SELECT 1 FROM models WHERE id = :id", id=model_id) is not None:
                continue
            dest = self.model_dir(model_id)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not _claim_folder(Path(built_dir), dest):
                continue  # another worker is registering this id right now
            values = dict(id=model_id, created_at=_now(), owned_by=f"user-{organization_id}",
                          base_model=base_model, parent_id=parent_id, job_id=job_id, method=method,
                          path=str(dest), labels=labels, cumulative_epochs=cumulative_epochs, meta=meta or {})
            try:
                self._insert("models", values)
            except IntegrityError:  # another worker took this id in the meantime
                shutil.move(str(dest), str(built_dir))
                continue
            return ModelRecord(**values)
        raise ConflictError("Could not allocate a unique model id.")

    def get_model(self, model_id: str) -> ModelRecord:
        row = self._one("SELECT * FROM models WHERE id = :id", id=model_id)
        if row is None:
            raise NotFoundError(f"No such fine-tuned model: {model_id}.",
                                hint="List models with `tunelab models list`.")
        return decode(ModelRecord, row)

    def job_model(self, job_id: str) -> ModelRecord | None:
        """The model a job registered (the newest, should a crash have let it register two)."""
        row = self._one("SELECT * FROM models WHERE job_id = :j ORDER BY created_at DESC, id DESC LIMIT 1", j=job_id)
        return decode(ModelRecord, row) if row is not None else None

    def find_model(self, model_id: str) -> ModelRecord | None:
        """A registered model, or a job's epoch checkpoint named as OpenAI names it
        (`<fine-tuned model or job id>:ckpt-step-<step>`, a job's `fine_tuned_model_checkpoint`):
        callable like a model while its folder is kept (the last three epochs, and the best one)."""
        row = self._one("SELECT * FROM models WHERE id = :id", id=model_id)
        return decode(ModelRecord, row) if row else self._checkpoint_model(model_id)

    def find_model_or_folder(self, model_id: str) -> ModelRecord | None:
        """`find_model`, or else `model_folder`: for the local CLI and Python API, where a path is
        the user's own; the server looks fine-tuned models up by id only."""
        return self.find_model(model_id) or self.model_folder(model_id)

    @staticmethod
    def model_folder(path: str) -> ModelRecord | None:
        """A model folder tunelab wrote, given by path (a job's `checkpoints/epoch-N`, a copied
        model), as an unregistered record; None when `path` holds no readable tunelab.json."""
        if not path:
            return None
        return _folder_record(Path(path).expanduser(), id=path, owned_by="user-local", parent_id=None, job_id=None)

    def _checkpoint_model(self, model_id: str) -> ModelRecord | None:
        match = ids.CHECKPOINT_MODEL.match(model_id)
        if match is None:
            return None
        owner, step = match["owner"], int(match["step"])
        row = self._one("SELECT * FROM jobs WHERE fine_tuned_model = :o OR id = :o", o=owner)
        if row is None:
            return None
        job = decode(JobRecord, row)
        checkpoint = next((c for c in self.list_checkpoints(job.id) if c.step == step), None)
        if checkpoint is None:
            return None
        parent = self.find_model(job.parent_model) if job.parent_model else None
        # None when the folder was never saved, or was an older epoch's and has been pruned
        return _folder_record(Path(checkpoint.path), id=model_id, created_at=checkpoint.created_at,
                              owned_by=f"user-{job.organization_id}", base_model=job.base_model,
                              parent_id=job.parent_model, job_id=job.id, method=job.method,
                              cumulative_epochs=(parent.cumulative_epochs if parent else 0) + checkpoint.epoch)

    def list_models(self) -> list[ModelRecord]:
        return [decode(ModelRecord, r) for r in self._all("SELECT * FROM models ORDER BY created_at, id")]

    def model_dependents(self, model_id: str) -> list[str]:
        """What still needs this model's files: LoRA adapters trained on its weights (they load them
        at every use) and jobs not yet ended that continue it."""
        record = self.get_model(model_id)
        refs = {record.id, record.path}
        found = [f"{m.id} is a LoRA adapter on its weights" for m in self.list_models()
                 if m.id != record.id and (m.meta or {}).get("lora") and (m.meta or {}).get("base_model") in refs]
        found += [f"job {j.id} ({j.status}) trains from it" for j in self.list_jobs()
                  if not j.is_terminal and refs & {j.model, j.parent_model, j.base_model}]
        return found

    def delete_model(self, model_id: str) -> ModelRecord:
        record = self.get_model(model_id)
        blockers = self.model_dependents(model_id)
        if blockers:
            raise ConflictError(f"{model_id} was not deleted: other models or jobs depend on it.", problems=blockers,
                                hint="Delete the dependent models first, or wait for the jobs to end (or cancel them).")
        self._exec("DELETE FROM models WHERE id = :id", id=model_id)
        shutil.rmtree(record.path, ignore_errors=True)
        return record

    # -- plumbing ----------------------------------------------------------------------------
    def _insert(self, table: str, values: dict) -> None:
        values = encode(values)
        cols = ", ".join(values)
        params = ", ".join(f":{k}" for k in values)
        self._exec(f"INSERT INTO {table} ({cols}) VALUES ({params})", **values)

    def _exec(self, sql: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def _one(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).first()

    def _all(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).all()


def _driver_url(url: str) -> str:
    """psycopg (3) is the PostgreSQL driver tunelab installs; to SQLAlchemy a bare postgresql:// means
    psycopg2, so the plain URL everyone writes is pointed at psycopg."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def _not_a_url(url: str) -> TunelabError:
    shown = repr(url) if "@" not in url else "(not shown: it may hold a password)"
    return InvalidInputError(f"The store's database URL {shown} is not a database URL.",
                             hint="Set TUNELAB_DATABASE_URL to postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE "
                                  "(or unset it to use the SQLite file in TUNELAB_HOME).")


def _unusable_url(url: str, exc: Exception) -> TunelabError:
    """A TUNELAB_DATABASE_URL that SQLAlchemy parses but cannot make an engine from: an unknown scheme
    (`postgre://`) or a driver that is not installed."""
    shown = make_url(url).render_as_string(hide_password=True)
    if isinstance(exc, ImportError) and url.startswith("postgresql+psycopg"):
        return InvalidInputError(f"The store's database {shown} is on PostgreSQL, but its driver psycopg (3) is not "
                                 f"installed ({exc}).",
                                 hint='Install it with `pip install "tunelab[postgres]"` (or `pip install '
                                      '"psycopg[binary]"`) in the environment that runs tunelab.')
    scheme = url.split(":", 1)[0]
    return InvalidInputError(f"The store's database URL {shown} names a database tunelab cannot use: "
                             f"{scheme!r} ({exc}).",
                             hint="tunelab stores jobs in PostgreSQL (TUNELAB_DATABASE_URL=postgresql://USER@HOST/"
                                  "DATABASE) or in SQLite (TUNELAB_DATABASE_URL unset: the file in TUNELAB_HOME).")


def _unusable_database(engine, exc: DBAPIError) -> TunelabError:
    reason = str(exc.orig).strip() or type(exc.orig).__name__
    if engine.dialect.name == "sqlite":
        folder = Path(engine.url.database).parent
        if folder.is_dir() and shutil.disk_usage(folder).free < 1 << 20:  # SQLite says "disk I/O error"
            return TunelabError(f"The store's database {engine.url.database} cannot be opened: the disk holding "
                                f"{folder} is full ({reason}).",
                                hint="Free space on that disk, then run the command again (`tunelab models prune` "
                                     "then frees more); the database itself is fine.")
        if folder.is_dir() and not os.access(folder, os.W_OK):  # read-only disk or folder: the file may be fine
            return TunelabError(f"The store's database {engine.url.database} cannot be opened: its folder {folder} "
                                f"is not writable ({reason}); SQLite writes beside the file even to read it.",
                                hint="Make that folder writable, or point TUNELAB_HOME at a writable copy of it.")
        return TunelabError(f"The store's database {engine.url.database} cannot be used: {reason}.",
                            hint="Restore it from a copy (one `tunelab store backup` made), or move it and its "
                                 "-wal/-shm files aside to start an empty store (the files/, jobs/ and models/ "
                                 "folders stay, unregistered).")
    return TunelabError(f"The store's database {engine.url.render_as_string(hide_password=True)} cannot be used: "
                        f"{reason}.", hint="Check TUNELAB_DATABASE_URL and that the database server is up.")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the CLI, the server and the worker read while one of them writes.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _folder_record(folder: Path, **fields) -> ModelRecord | None:
    """A ModelRecord for a model folder from its tunelab.json; `fields` override what the file says
    (a checkpoint's job knows its lineage). None without a readable tunelab.json."""
    meta_file = folder / MODEL_META_FILE
    try:
        meta = json.loads(meta_file.read_text())
        created = int(meta_file.stat().st_mtime)
    except (OSError, ValueError):
        return None
    values = dict(created_at=created, base_model=meta.get("base_model") or "", method=meta.get("method") or "",
                  path=str(folder.resolve()), labels=meta.get("labels"),
                  cumulative_epochs=int(meta.get("cumulative_epochs") or 0), meta=meta)
    return ModelRecord(**{**values, **fields})


LEFTOVER_AFTER_S = 60.0
"""A model folder with no row this old is what a crash between the move and the insert left."""


def _claim_folder(built: Path, dest: Path) -> bool:
    """Move `built` to `dest` atomically, unless `dest` is taken (False); a crash's leftover there
    (older than LEFTOVER_AFTER_S) is removed first."""
    import errno

    for _ in range(2):
        try:
            os.rename(built, dest)  # a directory onto a non-empty one fails: the claim is atomic
            return True
        except OSError as exc:
            if exc.errno == errno.EXDEV:  # another file system: a copy, not atomic (a store's rare layout)
                if dest.exists():
                    return False
                shutil.move(str(built), str(dest))
                return True
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                raise
        try:
            age = time.time() - dest.stat().st_mtime
        except FileNotFoundError:
            continue  # gone meanwhile: try again
        if age < LEFTOVER_AFTER_S:
            return False
        shutil.rmtree(dest, ignore_errors=True)
    return False
