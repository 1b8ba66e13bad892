"""The store's API on its own: job claims, cancel, list paging, event order, files, model ids."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tunelab.errors import ConflictError, NotFoundError
from tunelab.store import Store
from tunelab.store.ids import MODEL_ID, is_valid_id


@pytest.fixture
def store(tunelab_home) -> Store:
    return Store()


def new_job(store: Store, **overrides):
    values = dict(model="ada", base_model="minilm-l6", method="classifier", training_file="file-" + "0" * 24,
                  validation_file=None, hyperparams={"n_epochs": 1}, options={"labels": [" 1", " 2"]}, seed=0)
    values.update(overrides)
    return store.create_job(**values)


def aged_jobs(store: Store, n: int) -> list:
    """n queued jobs created 100 s apart, oldest first."""
    jobs = []
    for i in range(n):
        job = new_job(store)
        jobs.append(store.update_job(job.id, created_at=1_000_000 + 100 * i))
    return jobs


# -- claims ---------------------------------------------------------------------------------------

def test_claim_takes_the_oldest_queued_job_first(store):
    jobs = aged_jobs(store, 4)
    store.update_job(jobs[0].id, status="succeeded")  # not queued: never claimed
    claimed = [store.claim_next_job(worker_pid=123) for _ in range(3)]
    assert [j.id for j in claimed] == [j.id for j in jobs[1:]]
    assert all(j.status == "running" and j.worker_pid == 123 and j.attempts == 1 for j in claimed)
    assert all(j.started_at is not None and j.heartbeat_at is not None for j in claimed)
    assert store.claim_next_job(worker_pid=123) is None


def test_claim_is_first_in_first_out_within_one_second(store, monkeypatch):
    from tunelab.store import ids

    counter = iter(range(999, 0, -1))  # each new id sorts before the previous one
    monkeypatch.setattr(ids, "new_id", lambda prefix: f"{prefix}-{next(counter):024d}")
    monkeypatch.setattr("tunelab.store.store._now", lambda: 1_700_000_000)
    jobs = [new_job(store) for _ in range(3)]
    assert [store.claim_next_job(1).id for _ in range(3)] == [j.id for j in jobs]


def test_two_workers_never_claim_the_same_job(tunelab_home):
    first, second = Store(), Store()  # two connections to one database, as two worker processes have
    n_jobs = 12
    for _ in range(n_jobs):
        new_job(first)
    claims: dict[int, list[str]] = {1: [], 2: []}
    barrier = threading.Barrier(2)

    def work(pid: int, store: Store):
        barrier.wait()
        while (job := store.claim_next_job(worker_pid=pid)) is not None:
            claims[pid].append(job.id)

    threads = [threading.Thread(target=work, args=(1, first)), threading.Thread(target=work, args=(2, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = claims[1] + claims[2]
    assert len(everything) == n_jobs
    assert len(set(everything)) == n_jobs, "a job was claimed twice"
    for pid, ids in claims.items():
        assert all(first.get_job(i).worker_pid == pid and first.get_job(i).attempts == 1 for i in ids)


# -- cancel ---------------------------------------------------------------------------------------

def test_cancel_a_queued_job_at_once(store):
    job = new_job(store)
    cancelled = store.request_cancel(job.legacy_id)  # the legacy ft-… spelling names the same job
    assert cancelled.id == job.id
    assert cancelled.status == "cancelled" and cancelled.cancel_requested and cancelled.finished_at is not None
    assert store.list_events(job.id)[-1].message == "Job cancelled before it started."
    assert store.claim_next_job(1) is None
    with pytest.raises(ConflictError, match=rf"Job {job.id} has already ended \(cancelled\)"):
        store.request_cancel(job.id)
    with pytest.raises(ConflictError, match=f"Job {job.legacy_id} has already ended"):  # as the caller named it
        store.request_cancel(job.legacy_id)


def test_cancel_a_running_job_answers_cancelled_at_once(store):
    job = new_job(store)
    store.claim_next_job(1)
    requested = store.request_cancel(job.id)
    # As OpenAI answers; the runner's loop sees cancel_requested within a second and stops.
    assert requested.status == "cancelled" and requested.cancel_requested and requested.finished_at is not None
    assert store.list_events(job.id)[-1].message == "Cancellation requested."
    with pytest.raises(ConflictError, match=rf"Job {job.id} has already ended \(cancelled\)"):
        store.request_cancel(job.id)
    with pytest.raises(ConflictError, match=f"Job {job.legacy_id} has already ended"):  # as the caller named it
        store.request_cancel(job.legacy_id)


def test_pause_and_resume(store):
    queued = new_job(store)
    paused = store.request_pause(queued.id)
    assert paused.status == "paused" and store.claim_next_job(1) is None  # a paused job is not claimed
    resumed = store.request_resume(queued.legacy_id)
    assert resumed.status == "queued" and store.claim_next_job(1).id == queued.id
    running = store.request_pause(queued.id)
    assert running.status == "paused"
    with pytest.raises(ConflictError, match="still saving its checkpoint"):
        store.request_resume(queued.id)  # the runner has not handed it back yet
    store.update_job(queued.id, worker_pid=None, worker_id=None)  # what the runner does once it saved
    assert store.request_resume(queued.id).status == "queued"
    with pytest.raises(ConflictError, match="only paused jobs can be resumed"):
        store.request_resume(queued.id)
    store.request_cancel(queued.id)
    with pytest.raises(ConflictError, match="only queued or running jobs can be paused"):
        store.request_pause(queued.id)


def test_unknown_job(store):
    with pytest.raises(NotFoundError):
        store.get_job("ftjob-" + "0" * 24)
    with pytest.raises(NotFoundError):
        store.request_cancel("not-an-id")


# -- listing --------------------------------------------------------------------------------------

def test_list_jobs_newest_first_with_after_and_limit(store):
    jobs = aged_jobs(store, 3)
    same_second = [new_job(store) for _ in range(3)]  # ties on created_at are ordered by id
    everything = [j.id for j in store.list_jobs()]
    assert set(everything) == {j.id for j in jobs + same_second}
    assert everything[-3:] == [j.id for j in reversed(jobs)]
    assert [j.id for j in store.list_jobs(limit=2)] == everything[:2]

    paged, after = [], None
    while True:
        page = store.list_jobs(after=after, limit=2)
        assert len(page) <= 2
        if not page:
            break
        paged += [j.id for j in page]
        after = page[-1].id
    assert paged == everything  # every job once, in order, across pages
    assert [j.id for j in store.list_jobs(after=everything[3])] == everything[4:]
    assert store.list_jobs(after=everything[-1]) == []

    store.request_cancel(everything[0])
    assert [j.id for j in store.list_jobs(status="cancelled")] == [everything[0]]
    assert [j.id for j in store.list_jobs(status="queued", limit=1)] == [everything[1]]



def test_files_and_jobs_made_within_one_second_list_newest_first(store, tmp_path, monkeypatch):
    """created_at has whole seconds and ties were broken by wholly random ids: a training and a
    validation file uploaded together, or a sweep's jobs, listed in random order, so the newest was
    not first (`files.list(limit=1)`, `fine_tuning.jobs.list(limit=1)`). Ids now start with the
    creation time in microseconds."""
    monkeypatch.setattr("tunelab.store.store._now", lambda: 1_700_000_000)
    source = tmp_path / "train.jsonl"
    source.write_bytes(b'{"prompt": "a", "completion": " 1"}\n')
    files = [store.add_file(source, n_rows=1) for _ in range(5)]
    jobs = [new_job(store) for _ in range(5)]
    assert [f.id for f in store.list_files()] == [f.id for f in reversed(files)]
    assert [j.id for j in store.list_jobs()] == [j.id for j in reversed(jobs)]
    assert all(is_valid_id(f.id, "file") for f in files) and len({f.id for f in files}) == 5


def test_list_jobs_after_an_unknown_job(store):
    new_job(store)
    with pytest.raises(NotFoundError):
        store.list_jobs(after="ftjob-" + "0" * 24)


# -- events ---------------------------------------------------------------------------------------

def test_events_are_numbered_in_order(store):
    job = new_job(store)
    other = new_job(store)
    for i in range(5):
        store.add_event(job.id, f"message {i}", data={"i": i})
    store.add_event(other.id, "elsewhere")
    events = store.list_events(job.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.message for e in events] == [f"message {i}" for i in range(5)]
    assert events[2].data == {"i": 2} and events[0].level == "info"
    assert [e.seq for e in store.list_events(job.id, after_seq=3)] == [4, 5]
    assert [e.seq for e in store.list_events(job.id, newest_first=True, limit=2)] == [5, 4]
    assert [e.seq for e in store.list_events(other.id)] == [1]


def test_concurrent_writers_get_distinct_consecutive_seqs(tunelab_home):
    job = new_job(Store())
    barrier = threading.Barrier(4)

    def write(n: int):
        store = Store()
        barrier.wait()
        for i in range(10):
            store.add_event(job.id, f"writer {n} event {i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    events = Store().list_events(job.id)
    assert [e.seq for e in events] == list(range(1, 41))
    assert len({e.message for e in events}) == 40


# -- files ----------------------------------------------------------------------------------------

def test_file_add_get_delete(store, tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_bytes(b'{"prompt": "a", "completion": " 1"}\n')
    record = store.add_file(source, n_rows=1)
    assert is_valid_id(record.id, "file")
    assert record.filename == "train.jsonl" and record.purpose == "fine-tune" and record.n_rows == 1
    assert record.bytes == source.stat().st_size
    assert record.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    stored = Path(record.path)
    assert stored.parent == store.files_dir and stored.read_bytes() == source.read_bytes()
    assert store.get_file(record.id) == record
    assert [f.id for f in store.list_files()] == [record.id]

    assert store.delete_file(record.id) == record
    assert not stored.exists() and source.exists()
    with pytest.raises(NotFoundError):
        store.get_file(record.id)
    with pytest.raises(NotFoundError):
        store.delete_file(record.id)
    assert store.list_files() == []


def test_file_keeps_compound_suffix_and_given_name(store, tmp_path):
    source = tmp_path / "upload.tmp.jsonl.gz"
    source.write_bytes(gzip.compress(b'{"prompt": "a", "completion": " 1"}\n'))
    record = store.add_file(source, filename="reviews.jsonl.gz", purpose="fine-tune-results")
    assert record.path.endswith(".jsonl.gz") and record.filename == "reviews.jsonl.gz"
    assert record.purpose == "fine-tune-results"


@pytest.mark.parametrize("bad", ["file-..", "../tunelab.db", "file-abc/../../x", "ftjob-" + "0" * 24, ""])
def test_file_ids_are_checked_before_any_lookup(store, bad):
    with pytest.raises(NotFoundError):
        store.get_file(bad)


# -- models ---------------------------------------------------------------------------------------

def built(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_register_model_id_shape_and_move(store, tmp_path):
    when = datetime(2026, 3, 31, 5, 30, 46, tzinfo=timezone.utc)
    folder = built(tmp_path, "m")
    record = store.register_model(base_id="ada", built_dir=folder, base_model="minilm-l6", method="classifier",
                                  labels=[" 1", " 2"], cumulative_epochs=2, suffix="reviews", when=when,
                                  meta={"kind": "encoder"})
    assert record.id == "ada:ft-personal:reviews-2026-03-31-05-30-46"
    assert MODEL_ID.match(record.id)
    assert record.owned_by == "user-personal" and record.labels == [" 1", " 2"] and record.meta == {"kind": "encoder"}
    assert not folder.exists()  # moved, not copied
    assert (Path(record.path) / "model.safetensors").read_bytes() == b"weights"
    assert Path(record.path).parent == store.home / "models" and ":" not in Path(record.path).name
    assert store.get_model(record.id) == record and store.find_model(record.id) == record
    assert store.find_model("ada:ft-personal-2026-03-31-05-30-46") is None

    store.delete_model(record.id)
    assert not Path(record.path).exists() and store.list_models() == []
    with pytest.raises(NotFoundError):
        store.get_model(record.id)


def test_model_ids_unique_within_one_second(store, tmp_path):
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ids = []
    for i in range(2):
        folder = built(tmp_path, f"m{i}")
        ids.append(store.register_model(base_id="ada", built_dir=folder, base_model="minilm-l6", method="classifier",
                                        labels=None, cumulative_epochs=1, when=when).id)
    assert ids == ["ada:ft-personal-2026-01-02-03-04-05", "ada:ft-personal-2026-01-02-03-04-06"]
    assert all(MODEL_ID.match(i) for i in ids)
    assert [m.id for m in store.list_models()] == ids
    assert len({m.path for m in store.list_models()}) == 2


def test_register_replaces_a_leftover_folder_of_an_unregistered_model(store, tmp_path):
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    leftover = store.model_dir("ada:ft-personal-2026-01-02-03-04-05")
    leftover.mkdir(parents=True)
    (leftover / "half-written").write_text("x")
    old = time.time() - 3600  # a crash's leftover: untouched since
    os.utime(leftover, (old, old))
    record = store.register_model(base_id="ada", built_dir=built(tmp_path, "m"), base_model="minilm-l6",
                                  method="classifier", labels=None, cumulative_epochs=1, when=when)
    assert record.id == "ada:ft-personal-2026-01-02-03-04-05"
    assert sorted(p.name for p in Path(record.path).iterdir()) == ["model.safetensors"]


def test_register_leaves_a_folder_another_worker_is_registering(store, tmp_path):
    """Two workers sharing a store finishing in the same second both found the id free; the second
    deleted the first one's freshly moved folder as a crash's leftover (or failed its job with
    FileExistsError, in CI)."""
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    theirs = store.model_dir("ada:ft-personal-2026-01-02-03-04-05")
    theirs.mkdir(parents=True)
    (theirs / "model.safetensors").write_text("the other worker's model")  # its row is not in yet
    record = store.register_model(base_id="ada", built_dir=built(tmp_path, "m"), base_model="minilm-l6",
                                  method="classifier", labels=None, cumulative_epochs=1, when=when)
    assert record.id == "ada:ft-personal-2026-01-02-03-04-06"
    assert (theirs / "model.safetensors").read_text() == "the other worker's model"
