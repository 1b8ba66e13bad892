"""The store on a real PostgreSQL server (a database of its own per test, see tests/helpers/postgres.py):
migrations when several processes start at once, claims with row locks, leases and their expiry.
Skipped, with the reason, when no server answers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import create_engine, inspect, text

from tunelab.store import Store
from tunelab.store import migrations as migrations_mod

HEAD = [version for version, _, _ in migrations_mod.available()]

# Each process waits for the same instant, then opens the store (which migrates).
MIGRATE_AT_ONCE = """
import json, sys, time
from sqlalchemy import create_engine
from tunelab.store.migrations import migrate
url, start = sys.argv[1], float(sys.argv[2])
engine = create_engine(url)
time.sleep(max(0.0, start - time.time()))
print(json.dumps(migrate(engine)))
"""


def new_job(store: Store, **overrides):
    values = dict(model="ada", base_model="minilm-l6", method="classifier", training_file="file-" + "0" * 24,
                  validation_file=None, hyperparams={"n_epochs": 1}, options={"labels": [" 1", " 2"]}, seed=0)
    values.update(overrides)
    return store.create_job(**values)


@pytest.mark.slow  # starts four processes
def test_four_processes_starting_together_migrate_once(postgres_url, tmp_path):
    start = time.time() + 3.0  # after every interpreter has started
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_AT_ONCE, postgres_url, str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in results]
    applied = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    # Every migration was applied by exactly one of the four; the others found it done.
    assert sorted(v for versions in applied for v in versions) == HEAD
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars().all()
    assert rows == HEAD
    # PostgreSQL-only statements ran: heartbeats are 8-byte floats there (a 4-byte REAL rounds Unix
    # seconds to two minutes, longer than a lease).
    columns = {c["name"]: str(c["type"]) for c in inspect(engine).get_columns("jobs")}
    assert columns["heartbeat_at"] == "DOUBLE PRECISION"
    engine.dispose()


def test_store_on_postgres_keeps_sub_second_heartbeats(postgres_url, tmp_path):
    store = Store(home=tmp_path / "home", url=postgres_url)
    assert store.shared
    new_job(store)
    worker = store.register_worker(device="cpu")
    job = store.claim_next_job(1, worker.id)
    assert job.worker_id == worker.id and job.attempts == 1
    assert abs(job.heartbeat_at - time.time()) < 5  # the database's clock, in full precision


def test_a_plain_postgresql_url_uses_psycopg(postgres_url, tmp_path):
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    store = Store(home=tmp_path / "home", url=plain)
    assert store.engine.url.drivername == "postgresql+psycopg"


def test_claims_skip_a_row_another_worker_has_locked(postgres_url, tmp_path):
    store = Store(home=tmp_path / "home", url=postgres_url)
    first, second = new_job(store), new_job(store)
    other = create_engine(postgres_url)
    with other.connect() as conn:
        # Another worker is in the middle of claiming the oldest job.
        conn.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": first.id})
        started = time.monotonic()
        claimed = store.claim_next_job(2)
        assert time.monotonic() - started < 5  # skipped, not waited for
        assert claimed.id == second.id
        conn.rollback()
    assert store.claim_next_job(2).id == first.id
    other.dispose()


def test_workers_racing_never_claim_the_same_job(postgres_url, tmp_path):
    stores = [Store(home=tmp_path / "home", url=postgres_url) for _ in range(3)]
    for _ in range(30):
        new_job(stores[0])
    claims: dict[int, list[str]] = {i: [] for i in range(3)}
    barrier = threading.Barrier(3)

    def work(i: int):
        worker = stores[i].register_worker()
        barrier.wait()
        while (job := stores[i].claim_next_job(100 + i, worker.id)) is not None:
            claims[i].append(job.id)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [j for ids in claims.values() for j in ids]
    assert len(everything) == len(set(everything)) == 30
    assert all(stores[0].get_job(j).attempts == 1 for j in everything)


def test_an_expired_lease_requeues_the_job_once_and_the_old_worker_learns_it(postgres_url, tmp_path):
    store = Store(home=tmp_path / "home", url=postgres_url)
    job = new_job(store)
    dead = store.register_worker()
    assert store.claim_next_job(1, dead.id).id == job.id
    alive = store.register_worker()
    assert store.release_expired_jobs(lease_seconds=60, max_attempts=3) == []  # heartbeat is fresh

    with store.engine.begin() as conn:  # nobody heartbeated for 2 minutes
        conn.execute(text("UPDATE workers SET heartbeat_at = heartbeat_at - 120 WHERE id = :w"), {"w": dead.id})
    released = store.release_expired_jobs(lease_seconds=60, max_attempts=3)
    assert [(j.id, status) for j, status in released] == [(job.id, "queued")]
    assert store.release_expired_jobs(lease_seconds=60, max_attempts=3) == []  # once only
    again = store.get_job(job.id)
    assert again.status == "queued" and again.worker_id is None and again.attempts == 1
    assert store.get_worker(dead.id).status == "lost"
    # The old worker, if it comes back, finds it lost its lease and cannot claim.
    assert store.heartbeat_worker(dead.id) is False
    assert store.claim_next_job(1, dead.id) is None
    assert store.claim_next_job(2, alive.id).attempts == 2
    assert store.heartbeat_worker(alive.id) is True


def test_a_job_whose_workers_keep_dying_fails(postgres_url, tmp_path):
    store = Store(home=tmp_path / "home", url=postgres_url)
    job = new_job(store)
    worker = store.register_worker()
    store.claim_next_job(1, worker.id)
    store.update_job(job.id, attempts=3)
    store.stop_worker(worker.id)  # stopped without its job: no need to wait for the lease
    released = store.release_expired_jobs(lease_seconds=60, max_attempts=3)
    assert [status for _, status in released] == ["failed"]
    failed = store.get_job(job.id)
    assert failed.status == "failed" and failed.error["code"] == "worker_died"


def test_a_stopped_worker_hands_its_job_back_without_counting_the_attempt(postgres_url, tmp_path):
    store = Store(home=tmp_path / "home", url=postgres_url)
    job = new_job(store)
    worker = store.register_worker()
    store.claim_next_job(1, worker.id)
    assert store.hand_back_job(job.id, "someone-else") is False
    assert store.hand_back_job(job.id, worker.id) is True
    back = store.get_job(job.id)
    assert back.status == "queued" and back.attempts == 0 and back.worker_id is None


def test_list_workers_alive_within(postgres_url, tmp_path):
    store = Store(home=tmp_path / "home", url=postgres_url)
    a, b = store.register_worker(device="cpu"), store.register_worker(device="cuda:0")
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE workers SET heartbeat_at = heartbeat_at - 300 WHERE id = :w"), {"w": b.id})
    assert [w.id for w in store.list_workers()] == [a.id, b.id]
    assert [w.id for w in store.list_workers(alive_within=60)] == [a.id]
    # `worker --list` shows the job a worker runs, not one it finished
    job = new_job(store)
    assert store.claim_next_job(1, a.id).id == job.id and store.get_worker(a.id).job_id == job.id
    store.worker_finished_job(b.id, job.id)
    assert store.get_worker(a.id).job_id == job.id
    store.worker_finished_job(a.id, job.id)
    assert store.get_worker(a.id).job_id is None
    store.stop_worker(a.id)
    assert [w.id for w in store.list_workers(include_stopped=True)] == [a.id, b.id]
    assert [w.id for w in store.list_workers()] == [b.id]


@pytest.mark.parametrize("k", [0, len(HEAD) - 1])
def test_migrating_from_an_earlier_version_on_postgres(postgres_url, tmp_path, k):
    """The same path as SQLite's (tests/store/test_migrations.py), from nothing and from the last
    version, on PostgreSQL."""
    engine = create_engine(postgres_url)
    original = migrations_mod.available
    try:
        migrations_mod.available = lambda: original()[:k]
        assert migrations_mod.migrate(engine) == HEAD[:k]
    finally:
        migrations_mod.available = original
    store = Store(home=tmp_path / "home", url=postgres_url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars().all() == HEAD
    engine.dispose()


def test_expired_files_and_checkpoint_models_on_postgres(postgres_url, tmp_path):
    store = Store(home=tmp_path / "home", url=postgres_url)
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "a", "completion": " 1"}\n')
    kept, expiring = store.add_file(data), store.add_file(data, expires_after=3600)
    job = new_job(store, training_file=expiring.id)  # a queued job still reads it
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE files SET expires_at = expires_at - 7200"))
    assert {f.id for f in store.list_files()} == {kept.id, expiring.id}
    store.request_cancel(job.id)
    assert [f.id for f in store.list_files()] == [kept.id]  # gone once no unfinished job needs it
    assert store.find_model(f"{job.id}:ckpt-step-3") is None  # no such checkpoint: not a model


def test_a_database_a_newer_tunelab_migrated_is_refused_on_postgres(postgres_url, tmp_path):
    """A worker left on an older tunelab, started against the shared database after an upgrade elsewhere."""
    store = Store(home=tmp_path / "home", url=postgres_url)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, 'future', 0)"),
                     {"v": HEAD[-1] + 1})
    store.engine.dispose()
    with pytest.raises(migrations_mod.SchemaTooNewError, match="newer than this tunelab"):
        Store(home=tmp_path / "home", url=postgres_url)
