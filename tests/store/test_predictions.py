"""The prediction log's tables and its batching writer (tunelab.store.predictions)."""

from __future__ import annotations

import time

import pytest

from tunelab.errors import InvalidInputError
from tunelab.store import Store
from tunelab.store.predictions import PredictionLog, PredictionLogWriter, PredictionRecord


def row(i: int, *, model: str = "m", t: float | None = None, prompt: str = "a dress\n\n###\n\n", **extra) -> dict:
    return {"response_id": f"cmpl-{i:06d}", "prompt_index": 0, "created_at": t if t is not None else time.time(),
            "model": model, "endpoint": "completions", "prompt": prompt, "prediction": " 4",
            "label_probs": {" 4": 0.75, " 5": 0.25}, "top1_prob": 0.75, "margin": 0.5, "latency_ms": 3.0, **extra}


@pytest.fixture
def store(tunelab_home):
    return Store()


def test_insert_get_and_round_trip(store):
    log = PredictionLog(store)
    assert log.insert([row(1, metadata={"a": "b"}, end_user="u1", non_text=False)]) == 1
    got = log.get("cmpl-000001")
    assert isinstance(got, PredictionRecord) and got.label_probs == {" 4": 0.75, " 5": 0.25}
    assert got.metadata == {"a": "b"} and got.end_user == "u1" and got.non_text is False
    assert log.get("cmpl-000001", 1) is None and log.get("nope") is None


def test_writer_batches_and_flushes(store):
    writer = PredictionLogWriter(store, flush_rows=100, flush_ms=5000)
    for i in range(1000):
        assert writer.put(row(i))
    assert writer.flush(timeout=30)
    assert PredictionLog(store).count() == 1000
    assert writer.stats.written == 1000 and 10 <= writer.stats.batches <= 20
    writer.close()
    assert not writer.put(row(5000))  # closed


def test_writer_flushes_on_time(store):
    writer = PredictionLogWriter(store, flush_rows=1000, flush_ms=50)
    writer.put(row(1))
    deadline = time.monotonic() + 5
    while PredictionLog(store).count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert PredictionLog(store).count() == 1
    writer.close()


def test_writer_derives_columns_and_can_drop_text(store):
    writer = PredictionLogWriter(store, keep_text=False, enrich=lambda p: {"prompt_chars": len(p), "prompt_sha256": "h"})
    writer.put(row(1, prompt="secret"))
    writer.put({**row(2, prompt="free text"), "label_probs": None, "prediction": "generated secret"})
    writer.close()
    first, second = PredictionLog(store).predictions()
    assert first.prompt is None and first.prompt_chars == 6 and first.prompt_sha256 == "h" and first.prediction == " 4"
    assert second.prompt is None and second.prediction is None  # free text may repeat the user's words


def test_a_bad_row_does_not_lose_its_batch(store):
    writer = PredictionLogWriter(store, flush_rows=10, flush_ms=10)
    for i in range(5):
        writer.put(row(i))
    writer.put(row(3))  # the same response id and index again: refused by the primary key
    writer.close()
    assert PredictionLog(store).count() == 5 and writer.stats.failed == 1


def test_full_queue_drops_and_counts(store):
    writer = PredictionLogWriter(store, max_queue=0)
    assert not writer.put(row(1)) and writer.stats.dropped == 1


def test_writer_settings_are_checked(store):
    with pytest.raises(InvalidInputError):
        PredictionLogWriter(store, flush_rows=0)
    with pytest.raises(InvalidInputError):
        PredictionLogWriter(store, keep_days=0)


def test_prune_and_retention(store):
    log = PredictionLog(store)
    old = time.time() - 10 * 86400
    log.insert([row(1, t=old), row(2, t=old, model="other"), row(3)])
    log.add_feedback([{"model": "m", "label": " 4", "source": "human", "response_id": "cmpl-000001",
                       "prompt_index": 0, "created_at": old}])
    assert log.prune(time.time() - 5 * 86400, model="m") == (1, 0)
    assert [r.response_id for r in log.predictions()] == ["cmpl-000002", "cmpl-000003"]
    assert len(log.feedback()) == 1  # feedback is training data: kept unless asked
    assert log.prune(time.time() - 5 * 86400, feedback=True) == (1, 1)
    # the server's --log-keep-days prunes when it starts
    log.insert([row(4, t=old)])
    writer = PredictionLogWriter(store, keep_days=5)
    writer.start()
    writer.close()
    assert [r.response_id for r in log.predictions()] == ["cmpl-000003"]


def test_feedback_is_added_never_overwritten(store):
    log = PredictionLog(store)
    log.insert([row(1), row(2)])
    first = log.add_feedback([{"model": "m", "label": " 5", "source": "a", "response_id": "cmpl-000001",
                               "prompt_index": 0}])
    log.add_feedback([{"model": "m", "label": " 3", "source": "b", "response_id": "cmpl-000001", "prompt_index": 0}])
    assert log.get("cmpl-000001").prediction == " 4"  # the model's answer stays as it was
    assert len(log.feedback("m")) == 2 and first[0].id.startswith("fb-")
    assert log.latest_feedback("m")[("cmpl-000001", 0)].label == " 3"
    assert [r.response_id for r in log.unreviewed("m")] == ["cmpl-000002"]
    with pytest.raises(InvalidInputError):
        log.add_feedback([{"model": "m", "label": "", "source": "x"}])


def test_rows_of_one_call_keep_their_order_when_ids_share_a_microsecond(store, monkeypatch):
    """One call's rows share created_at, so their ids order them; ids made in the same microsecond
    differ only in random bits, so a file's '1' then '5' for one prediction could end up '1' latest."""
    from tunelab.store import ids

    made = iter(["fb-0000000000000fffffffffff", "fb-0000000000000aaaaaaaaaaa"])  # same time, descending
    monkeypatch.setattr(ids, "new_id", lambda prefix: next(made))
    log = PredictionLog(store)
    log.insert([row(1)])
    log.add_feedback([{"model": "m", "label": label, "source": "file", "response_id": "cmpl-000001",
                       "prompt_index": 0} for label in (" 1", " 5")])
    assert [f.label for f in log.feedback("m")] == [" 1", " 5"]
    assert log.latest_feedback("m")[("cmpl-000001", 0)].label == " 5"


def test_unreviewed_most_uncertain_first(store):
    log = PredictionLog(store)
    log.insert([row(i, margin=m) for i, m in enumerate([0.5, 0.01, 0.2, None])])
    assert [r.margin for r in log.unreviewed("m", limit=10)] == [0.01, 0.2, 0.5]


def _queue_of_repeated_texts(log):
    log.insert([row(1, margin=0.3, prompt_sha256="spam"), row(2, margin=0.1, prompt_sha256="spam"),
                row(3, margin=0.2, prompt_sha256="spam"), row(4, margin=0.15, prompt_sha256="review"),
                row(5, margin=0.05), row(6, margin=0.06)])  # no hash kept: never merged
    assert [r.response_id for r in log.unreviewed("m")] == ["cmpl-000005", "cmpl-000006", "cmpl-000002",
                                                           "cmpl-000004"]
    assert [r.response_id for r in log.unreviewed("m", limit=3)] == ["cmpl-000005", "cmpl-000006", "cmpl-000002"]
    # labelled through another of its predictions, the text leaves the queue
    log.add_feedback([{"model": "m", "label": " 1", "source": "a", "response_id": "cmpl-000003", "prompt_index": 0}])
    assert [r.response_id for r in log.unreviewed("m")] == ["cmpl-000005", "cmpl-000006", "cmpl-000004"]


def test_the_review_queue_lists_a_text_once(store):
    """Spam, retries and popular reviews were listed once per request, and a text labelled through
    one prediction stayed in the queue through the others; the export keeps one example per text."""
    _queue_of_repeated_texts(PredictionLog(store))


def test_the_log_on_postgresql(postgres_url, tunelab_home):
    """The same tables and writer on PostgreSQL (skipped when no server answers): migration 003 is
    portable, the driver's executemany takes its parameter style, JSON and floats round-trip."""
    store = Store()
    assert store.engine.dialect.name == "postgresql"
    writer = PredictionLogWriter(store, flush_rows=50, flush_ms=20, enrich=lambda p: {"prompt_sha256": "h"})
    for i in range(120):
        writer.put(row(i, metadata={"k": "v"}, margin=i / 1000, empty_prompt=False))
    writer.close()
    log = PredictionLog(store)
    assert log.count("m") == 120 and writer.stats.failed == 0
    got = log.get("cmpl-000007")
    assert got.label_probs == {" 4": 0.75, " 5": 0.25} and got.metadata == {"k": "v"} and got.empty_prompt is False
    assert isinstance(got.created_at, float) and got.prompt_sha256 == "h"
    log.add_feedback([{"model": "m", "label": " 5", "source": "x", "response_id": "cmpl-000000", "prompt_index": 0}])
    assert log.unreviewed("m", limit=2) == []  # one text (hash "h"), labelled through one of its predictions
    assert log.prune(time.time() + 1) == (120, 0)


def test_prune_with_vacuum_gives_the_space_back(store, capsys):
    """Deleting a month of the log left the SQLite file as large as before (123 MB after deleting
    75 % of it, in QA); `logs prune --vacuum` rewrites it."""
    import os

    from tests.conftest import run_cli

    log = PredictionLog(store)
    old = time.time() - 10 * 86400
    log.insert([row(i, t=old, prompt="a long review of a dress " * 40) for i in range(3000)] + [row(5000)])
    database = store.engine.url.database
    full = os.path.getsize(database)
    assert run_cli("logs", "prune", "--keep-days", "1") == 0
    assert os.path.getsize(database) >= full * 0.9  # deleted rows only mark their pages free
    assert run_cli("logs", "prune", "--keep-days", "1", "--vacuum") == 0
    out = capsys.readouterr().out
    assert "Compacted" in out and os.path.getsize(database) < full / 4
    assert log.count() == 1


def test_vacuum_on_postgresql(postgres_url, capsys):
    from tests.conftest import run_cli

    log = PredictionLog(Store())
    log.insert([row(i, t=time.time() - 10 * 86400) for i in range(50)])
    assert run_cli("logs", "prune", "--keep-days", "1", "--vacuum") == 0
    out = capsys.readouterr().out
    assert "Deleted 50 logged" in out and "PostgreSQL reuses the space" in out and log.count() == 0


def test_the_review_queue_lists_a_text_once_on_postgresql(postgres_url, tunelab_home):
    _queue_of_repeated_texts(PredictionLog(Store()))


def test_prune_deletes_in_short_transactions_on_sqlite(store, monkeypatch):
    """A big prune held SQLite's one write lock for the whole delete (2.7 s per million rows, QA): the
    server's feedback, the worker's events and every other write waited, and past the 30 s busy
    timeout failed. It now commits every PRUNE_CHUNK_ROWS rows, so writers get in between."""
    from sqlalchemy import event

    monkeypatch.setattr("tunelab.store.predictions.PRUNE_CHUNK_ROWS", 10)
    log = PredictionLog(store)
    old = time.time() - 10 * 86400
    log.insert([row(i, t=old + i) for i in range(35)] + [row(100 + i, t=old, model="other") for i in range(5)]
               + [row(200 + i) for i in range(3)])
    log.add_feedback([{"model": "m", "label": " 4", "source": "s", "prompt": f"p{i}", "created_at": old}
                      for i in range(12)])
    commits = []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))
    assert log.prune(time.time() - 5 * 86400, model="m", feedback=True) == (35, 12)
    assert len(commits) >= 4 + 2  # 35 rows in chunks of 10, then 12 feedback rows
    assert sorted(r.response_id for r in log.predictions()) == (
        [f"cmpl-{100 + i:06d}" for i in range(5)] + [f"cmpl-{200 + i:06d}" for i in range(3)])
    assert log.prune(time.time() - 5 * 86400) == (5, 0)
