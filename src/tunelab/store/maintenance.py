"""Keeping a store safe: a consistent backup of the database while jobs run, and freeing disk space
by deleting epoch checkpoints nobody needs any more."""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.errors import ConflictError, InvalidInputError
from tunelab.fsutil import disk_full_names
from tunelab.store.store import Store

BACKED_UP_TABLES = ("files", "jobs", "models", "checkpoints", "job_events")


@dataclass
class Backup:
    path: Path
    bytes: int
    counts: dict[str, int]
    """Rows per table in the copy."""
    artifacts: Path
    """The artifact root (files, jobs, models): not in the database, to be copied with it."""


def pg_dump_command(store: Store, out: str | Path) -> str:
    """The pg_dump command that backs up a PostgreSQL store to `out` (libpq's URL: no +driver, and no
    password on the command line, where `ps` shows it)."""
    url = store.engine.url
    command = f"pg_dump --format=custom --file {shlex.quote(str(out))} {shlex.quote(_libpq_url(url))}"
    return ("PGPASSWORD=... " if url.password else "") + command


def _libpq_url(url) -> str:
    # URL.set(password=None) keeps the password; the URL is a named tuple, so replace the field.
    return url.set(drivername="postgresql")._replace(password=None).render_as_string(hide_password=False)


def backup(store: Store, out: str | Path, *, overwrite: bool = False) -> Backup:
    """Copy a SQLite store's database to `out` with SQLite's online backup API: a consistent snapshot
    even while a worker writes (a file copy of a WAL database may not be). The copy is checked with
    `PRAGMA integrity_check` and written under a temporary name first, so `out` is whole or absent."""
    out = Path(out)
    if store.engine.dialect.name != "sqlite":
        restore = _libpq_url(store.engine.url)
        raise ConflictError(
            f"`tunelab store backup` copies SQLite stores; this store is on {store.engine.dialect.name}.",
            hint="Back it up with PostgreSQL's own tool (restore with pg_restore):\n  "
                 + pg_dump_command(store, out)
                 + f"\n  pg_restore --clean --if-exists --dbname {shlex.quote(restore)} {shlex.quote(str(out))}"
                 + f"\nCopy the artifact root as well (files, jobs, models): {store.home}")
    if out.exists() and not overwrite:
        raise ConflictError(f"{out} exists.", hint="Choose another file, or pass --force to replace it.")
    if out.is_dir():
        raise InvalidInputError(f"{out} is a folder; give a file name for the backup.")
    database = store.engine.url.database
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with disk_full_names(out.parent, "the backup"):
            source = sqlite3.connect(database)
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)
                # The copy inherits WAL mode; a backup should be one self-contained file.
                target.execute("PRAGMA journal_mode=DELETE")
                check = target.execute("PRAGMA integrity_check").fetchone()[0]
                counts = {t: target.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in BACKED_UP_TABLES}
            finally:
                target.close()
                source.close()
            if check != "ok":
                raise ConflictError(f"The backup of {database} failed its integrity check: {check}")
            os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return Backup(path=out, bytes=out.stat().st_size, counts=counts, artifacts=store.home)


@dataclass(frozen=True)
class Compacted:
    database: str
    bytes_before: int | None
    """The SQLite file's size before and after; None on PostgreSQL (its space is reused, not returned)."""
    bytes_after: int | None


def compact(store: Store) -> Compacted:
    """Give the space of deleted rows back: deleting a month of the prediction log leaves a SQLite
    file as large as before (its pages are only marked free), so `logs prune --vacuum` rewrites it
    with VACUUM; on PostgreSQL, a plain VACUUM of the log's tables makes the space reusable (only
    VACUUM FULL would shrink them, holding an exclusive lock on the log while it runs)."""
    from sqlalchemy.exc import OperationalError

    if store.engine.dialect.name == "sqlite":
        database = store.engine.url.database
        before = os.path.getsize(database)
        try:
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM")
                # In WAL mode the rewritten pages sit in the -wal file until a checkpoint moves them.
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except OperationalError as exc:
            if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                raise ConflictError(f"Cannot compact {database}: another process was writing to it the whole time.",
                                    hint="Run it again when tunelab serve and the worker are quieter.") from None
            raise
        return Compacted(str(database), before, os.path.getsize(database))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) prediction_log, prediction_feedback")
    return Compacted(store.engine.url.render_as_string(hide_password=True), None, None)


@dataclass
class Pruned:
    path: Path
    bytes: int
    reason: str


@dataclass
class PruneReport:
    removed: list[Pruned] = field(default_factory=list)
    dry_run: bool = False

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.removed)


def prune_checkpoints(store: Store, *, keep: int, dry_run: bool = False) -> PruneReport:
    """For every job that has ended, delete all but its last `keep` epoch checkpoint folders, and what
    an interrupted save or resume left behind. A job still queued or running keeps everything: it
    resumes from these and may register one of its epochs. The checkpoint rows stay, with their
    metrics (as they do when a job drops its older checkpoints itself)."""
    if keep < 0:
        raise InvalidInputError(f"keep must be 0 or more, got {keep}.")
    report = PruneReport(dry_run=dry_run)
    for job in store.list_jobs():
        if not job.is_terminal:
            continue
        epochs = sorted(store.list_checkpoints(job.id), key=lambda c: c.epoch)
        for ckpt in epochs[:len(epochs) - keep] if keep else epochs:
            _remove(Path(ckpt.path), f"{job.id} epoch {ckpt.epoch} checkpoint", report)
        work = store.job_dir(job.id)
        for leftover in ("resume", "resume.old", "resume.tmp", "final"):
            _remove(work / leftover, f"{job.id} {leftover} (left by an interrupted run)", report)
        for parent in (work, work / "checkpoints"):
            for child in _unfinished(parent):
                _remove(child, f"{job.id} unfinished {child.name}", report)
    # Uploads and model registrations are not tied to a job's end: one may be in flight now, in
    # this process or on another machine. Only what has been left alone for an hour is stale.
    stale_before = time.time() - STALE_AFTER_S
    for parent, what in ((store.files_dir, "upload"), (store.home / "models", "model folder")):
        for child in _unfinished(parent):
            if _mtime(child) < stale_before:
                _remove(child, f"unfinished {what} {child.name} (a write killed part-way, untouched for over an hour)",
                        report)
    return report


STALE_AFTER_S = 3600
"""Age past which an unfinished upload or model folder outside a job is taken as abandoned."""


def _unfinished(parent: Path) -> list[Path]:
    """What fsutil.atomic_open / atomic_dir write under a hidden temporary name before the rename
    that completes them; one still there was never completed (its writer was killed)."""
    if not parent.is_dir():
        return []
    return [child for child in parent.iterdir()
            if child.name.startswith(".") and (child.is_dir() or child.name.endswith(".tmp"))]


def _mtime(path: Path) -> float:
    """The newest modification time in `path` (a folder being written is as young as its newest file)."""
    try:
        times = [path.stat().st_mtime] + ([f.stat().st_mtime for f in path.rglob("*")] if path.is_dir() else [])
    except FileNotFoundError:  # completed (renamed) or removed meanwhile
        return time.time()
    return max(times)


def _remove(path: Path, reason: str, report: PruneReport) -> None:
    if not path.exists():
        return
    report.removed.append(Pruned(path, _size(path), reason))
    if not report.dry_run:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
