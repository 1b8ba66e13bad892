"""Store safety: `tunelab store backup` (SQLite's online backup API, consistent while a writer runs;
pg_dump advice on PostgreSQL), `tunelab models prune` (old epoch checkpoints, leftovers) and model
deletion refused while a LoRA adapter or an unfinished job depends on the model."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tunelab.errors import ConflictError
from tunelab.store import Store
from tunelab.store.maintenance import backup, prune_checkpoints


def _job(store, **overrides):
    values = dict(model="ada", base_model="minilm-l6", method="classifier", training_file="file-" + "0" * 24,
                  validation_file=None, hyperparams={"n_epochs": 1}, options={}, seed=0)
    values.update(overrides)
    return store.create_job(**values)


def _model(store, tmp_path, name: str, **meta):
    built = tmp_path / f"build-{name}"
    built.mkdir()
    (built / "weights.bin").write_bytes(b"x" * 100)
    return store.register_model(base_id=name, built_dir=built, base_model="minilm-l6", method="classifier",
                                labels=[" 1", " 2"], cumulative_epochs=1, meta=meta)


# -- backup ---------------------------------------------------------------------------------------

def test_backup_is_consistent_while_a_writer_runs(tmp_path):
    store = Store()
    job = _job(store)
    stop = threading.Event()

    def write():
        while not stop.is_set():
            store.add_event(job.id, "tick")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        result = backup(store, tmp_path / "backup.db")
    finally:
        stop.set()
        writer.join()
    assert result.path == tmp_path / "backup.db" and result.bytes > 0
    assert result.counts["jobs"] == 1 and result.artifacts == store.home
    copy = sqlite3.connect(result.path)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    assert copy.execute("SELECT COUNT(*) FROM job_events").fetchone()[0] == result.counts["job_events"]
    seqs = [r[0] for r in copy.execute("SELECT seq FROM job_events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))  # a snapshot: no event missing in the middle
    copy.close()
    # A store opened on the backup reads it.
    home = tmp_path / "restored"
    home.mkdir()
    (home / "tunelab.db").write_bytes(result.path.read_bytes())
    assert Store(home=home).get_job(job.id).id == job.id


def test_backup_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    Store()
    out = tmp_path / "b.db"
    out.write_text("keep me")
    assert run_cli("store", "backup", "--out", out) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me"
    assert run_cli("store", "backup", "--out", out, "--force") == 0
    printed = capsys.readouterr().out
    assert f"Backed up the store to {out}" in printed and "copy that folder too" in printed
    assert not list(tmp_path.glob(".b.db*"))


def test_backup_of_a_postgres_store_gives_the_pg_dump_command(postgres_url, capsys, tmp_path):
    assert run_cli("store", "backup", "--out", tmp_path / "x.dump") == 2
    err = capsys.readouterr().err
    database = postgres_url.rsplit("/", 1)[1]
    assert f"pg_dump --format=custom --file {tmp_path / 'x.dump'} postgresql://" in err
    assert "+psycopg" not in err and database in err
    assert "pg_restore" in err and not (tmp_path / "x.dump").exists()


# -- prune --------------------------------------------------------------------------------------------

def test_prune_keeps_the_last_checkpoints_of_ended_jobs_only(tiny_models, tunelab_home, capsys):
    trained = tiny_models.install_trained(tunelab_home)
    store = trained.store
    jobs = {j.id: j for j in store.list_jobs()}
    two_epochs = [j for j in jobs if len(store.list_checkpoints(j)) == 2]
    assert two_epochs
    running = two_epochs[0]
    store.update_job(running, status="running")  # a job still running keeps everything
    leftover = store.job_dir(two_epochs[-1]) / "checkpoints" / ".epoch-3.abc"
    leftover.mkdir(parents=True)

    dry = prune_checkpoints(store, keep=1, dry_run=True)
    assert dry.removed and all(p.path.exists() for p in dry.removed)
    assert run_cli("models", "prune", "--keep", "1") == 0
    out = capsys.readouterr().out
    assert "Deleted" in out and "folder(s)" in out
    for job_id in two_epochs:
        paths = [Path(c.path) for c in store.list_checkpoints(job_id)]
        if job_id == running:
            assert all(p.exists() for p in paths)
        else:
            assert [p.exists() for p in paths] == [False, True]
            assert len(store.list_checkpoints(job_id)) == 2  # the rows (metrics) stay
    assert not leftover.exists()
    assert prune_checkpoints(store, keep=1).removed == []  # nothing left to do
    # The registered models are untouched.
    assert all(Path(m.path).exists() for m in store.list_models())


def test_prune_removes_what_killed_writes_left_once_it_is_an_hour_old(tmp_path, capsys):
    import os
    import time

    store = Store()
    model = _model(store, tmp_path, "enc")
    ended = _job(store).id
    store.update_job(ended, status="failed")
    running = _job(store).id
    store.update_job(running, status="running")
    store.files_dir.mkdir(parents=True, exist_ok=True)
    # What fsutil.atomic_open / atomic_dir leave when the writer is killed before the rename.
    old_upload = store.files_dir / ".file-abc.jsonl.x1y2.tmp"
    new_upload = store.files_dir / ".file-def.jsonl.z3w4.tmp"
    old_model = Path(model.path).parent / ".ft-half.q9r8"
    ended_tmp = store.job_dir(ended) / ".results.csv.k7.tmp"
    running_tmp = store.job_dir(running) / ".results.csv.m5.tmp"
    for f in (old_upload, new_upload, ended_tmp, running_tmp):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("half")
    (old_model / "weights").mkdir(parents=True)
    (old_model / "weights" / "model.safetensors").write_bytes(b"x" * 10)
    hour_ago = time.time() - 2 * 3600
    for f in (old_upload, old_model, old_model / "weights", old_model / "weights" / "model.safetensors"):
        os.utime(f, (hour_ago, hour_ago))

    assert run_cli("models", "prune") == 0
    out = capsys.readouterr().out
    assert not old_upload.exists() and not old_model.exists() and not ended_tmp.exists()
    assert "unfinished upload" in out and "unfinished model folder" in out
    # A write that may still be going on (recent, or a running job's) is left alone.
    assert new_upload.exists() and running_tmp.exists()
    assert Path(model.path).exists()  # the registered model itself is untouched


# -- deleting a model others depend on ------------------------------------------------------------------

def test_a_model_with_a_lora_adapter_on_it_is_not_deleted(tmp_path, capsys):
    store = Store()
    base = _model(store, tmp_path, "enc")
    adapter = _model(store, tmp_path, "lora", lora=True, base_model=base.id)
    with pytest.raises(ConflictError) as err:
        store.delete_model(base.id)
    assert adapter.id in err.value.render()
    assert run_cli("models", "prune", "--model", base.id) == 2
    assert "LoRA adapter" in capsys.readouterr().err
    assert Path(base.path).exists() and store.find_model(base.id)

    assert run_cli("models", "prune", "--model", adapter.id) == 0  # the adapter itself can go
    assert not Path(adapter.path).exists() and store.find_model(adapter.id) is None
    assert run_cli("models", "prune", "--model", base.id) == 0  # and then its base
    assert not Path(base.path).exists() and store.find_model(base.id) is None


def test_a_model_an_unfinished_job_continues_is_not_deleted(tmp_path):
    store = Store()
    parent = _model(store, tmp_path, "enc")
    job = _job(store, model=parent.id, parent_model=parent.id)
    with pytest.raises(ConflictError, match="depend on it") as err:
        store.delete_model(parent.id)
    assert job.id in err.value.render()
    store.update_job(job.id, status="succeeded")
    store.delete_model(parent.id)
    assert store.find_model(parent.id) is None


def test_pg_dump_command_keeps_the_password_off_the_command_line(tmp_path):
    from sqlalchemy import make_url

    from tunelab.store.maintenance import pg_dump_command

    class FakeStore:
        class engine:
            url = make_url("postgresql+psycopg://tunelab:secret@db.example:5433/queue?sslmode=require")

    command = pg_dump_command(FakeStore, tmp_path / "b.dump")
    assert command.startswith("PGPASSWORD=... pg_dump --format=custom --file ")
    assert "'postgresql://tunelab@db.example:5433/queue?sslmode=require'" in command
    assert "secret" not in command
