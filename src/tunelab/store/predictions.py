"""The prediction log and people's feedback on it (migration 003), and the writer that records
predictions off the request path.

- `PredictionLog(store)`: typed reads and writes of the two tables (`prediction_log`, one row per
  prompt answered by a fine-tuned model; `prediction_feedback`, the labels people gave). Feedback
  is only ever added: it never changes a logged prediction, and the latest feedback on a
  prediction is the one that counts.
- `PredictionLogWriter`: a background thread that takes rows from a queue and writes them in
  batches, one transaction per batch, every `flush_rows` rows or `flush_ms` milliseconds, whichever
  comes first. A request only appends to the queue. A process killed with `kill -9` loses the rows
  not written yet: those answered in the last `flush_ms` (default 200 ms), plus those of a batch
  being written (its transaction is not committed) and any that arrived meanwhile.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from tunelab.errors import InvalidInputError
from tunelab.store import ids

log = logging.getLogger("tunelab.store")

DEFAULT_FLUSH_ROWS = 256
DEFAULT_FLUSH_MS = 200
DEFAULT_MAX_QUEUE = 100_000
PRUNE_EVERY_S = 3600.0
PRUNE_CHUNK_ROWS = 20_000
"""Rows a prune deletes per transaction on SQLite (about 50 ms of the write lock)."""

LOG_COLUMNS = ("response_id", "prompt_index", "created_at", "model", "endpoint", "api_key_id", "end_user",
               "metadata", "prompt", "prompt_sha256", "prompt_chars", "prompt_tokens", "empty_prompt", "non_text",
               "prediction", "label_probs", "top1_prob", "margin", "latency_ms")
FEEDBACK_COLUMNS = ("id", "created_at", "model", "response_id", "prompt_index", "prompt", "label", "source",
                    "api_key_id", "end_user", "metadata")


@dataclass
class PredictionRecord:
    """One logged prediction: what the model answered to one prompt of one response."""

    response_id: str
    prompt_index: int
    created_at: float
    model: str
    endpoint: str  # "completions", "chat.completions" or "labels.score"
    api_key_id: str | None = None
    end_user: str | None = None  # the request's `user`
    metadata: dict[str, Any] | None = None
    prompt: str | None = None  # None with `store: false` or `tunelab serve --no-log-text`
    prompt_sha256: str | None = None
    prompt_chars: int | None = None
    prompt_tokens: int | None = None
    empty_prompt: bool | None = None
    non_text: bool | None = None
    prediction: str | None = None  # the label, or the generated text
    label_probs: dict[str, float] | None = None  # classifiers: every label, summing to 1
    top1_prob: float | None = None
    margin: float | None = None  # top-1 minus top-2 probability
    latency_ms: float | None = None


@dataclass
class FeedbackRecord:
    """A label a person (or a process they trust) gave for a prediction, or for a text."""

    id: str
    created_at: float
    model: str
    label: str
    source: str
    response_id: str | None = None
    prompt_index: int | None = None
    prompt: str | None = None
    api_key_id: str | None = None
    end_user: str | None = None
    metadata: dict[str, Any] | None = None


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for key in ("metadata", "label_probs"):
        if out.get(key) is not None and not isinstance(out[key], str):
            out[key] = json.dumps(out[key], ensure_ascii=False)
    for key in ("empty_prompt", "non_text"):
        if out.get(key) is not None:
            out[key] = int(bool(out[key]))
    return out


def _decode(cls, row):
    values = dict(row._mapping)
    for key in ("metadata", "label_probs"):
        if values.get(key) is not None:
            values[key] = json.loads(values[key])
    for key in ("empty_prompt", "non_text"):
        if values.get(key) is not None:
            values[key] = bool(values[key])
    return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


class PredictionLog:
    """Reads and writes of the prediction log and the feedback table of a Store."""

    def __init__(self, store):
        self.store = store
        self.engine = store.engine

    # -- predictions ---------------------------------------------------------------------------
    def insert(self, records: Iterable[PredictionRecord | dict]) -> int:
        """Insert rows in one transaction. The driver's executemany is called directly (no
        SQLAlchemy statement processing per row): the server's log writer calls this."""
        rows = [_encode(r.__dict__ if isinstance(r, PredictionRecord) else r) for r in records]
        if not rows:
            return 0
        style = self.engine.dialect.paramstyle
        if style in ("named", "pyformat"):
            marks = [f":{c}" if style == "named" else f"%({c})s" for c in LOG_COLUMNS]
            params = [{c: r.get(c) for c in LOG_COLUMNS} for r in rows]
        else:
            marks = {"qmark": ["?"] * len(LOG_COLUMNS), "format": ["%s"] * len(LOG_COLUMNS)}.get(
                style, [f":{i + 1}" for i in range(len(LOG_COLUMNS))])
            params = [tuple(r.get(c) for c in LOG_COLUMNS) for r in rows]
        sql = f"INSERT INTO prediction_log ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join(marks)})"
        with self.engine.begin() as conn:
            conn.exec_driver_sql(sql, params)
        return len(rows)

    def get(self, response_id: str, prompt_index: int = 0) -> PredictionRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM prediction_log WHERE response_id = :r AND prompt_index = :i"),
                               {"r": response_id, "i": int(prompt_index)}).first()
        return _decode(PredictionRecord, row) if row else None

    def predictions(self, model: str | None = None, *, since: float | None = None, until: float | None = None,
                    limit: int | None = None, newest_first: bool = False) -> list[PredictionRecord]:
        """Logged predictions, oldest first (newest first with `newest_first`), of one model or all."""
        where, params = self._where(model, since, until)
        sql = "SELECT * FROM prediction_log" + where
        sql += " ORDER BY created_at DESC, response_id DESC, prompt_index DESC" if newest_first else \
            " ORDER BY created_at, response_id, prompt_index"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self.engine.connect() as conn:
            return [_decode(PredictionRecord, r) for r in conn.execute(text(sql), params)]

    def count(self, model: str | None = None, *, since: float | None = None, until: float | None = None) -> int:
        where, params = self._where(model, since, until)
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM prediction_log" + where), params).scalar_one())

    def models(self) -> list[tuple[str, int, float, float]]:
        """(model, predictions, first time, last time) for every model in the log."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT model, COUNT(*), MIN(created_at), MAX(created_at) FROM prediction_log "
                                     "GROUP BY model ORDER BY model")).all()
        return [(r[0], int(r[1]), float(r[2]), float(r[3])) for r in rows]

    def unreviewed(self, model: str, *, limit: int = 20, since: float | None = None) -> list[PredictionRecord]:
        """Classifier predictions that nobody gave feedback on, most uncertain first (smallest margin
        between the two most probable labels), one per distinct prompt: a text sent many times (a
        retried request, spam, a popular review) was listed once per request, and a text labelled
        through one of its predictions stayed in the queue through the others, though the export
        keeps one example per distinct text."""
        where, params = self._where(model, since, None, alias="p")
        sql = ("SELECT p.* FROM prediction_log p" + where + " AND p.margin IS NOT NULL AND NOT EXISTS ("
               "SELECT 1 FROM prediction_feedback f WHERE f.response_id = p.response_id "
               "AND f.prompt_index = p.prompt_index) AND (p.prompt_sha256 IS NULL OR p.prompt_sha256 NOT IN ("
               # uncorrelated: computed once, not once per candidate row
               "SELECT q.prompt_sha256 FROM prediction_feedback f JOIN prediction_log q ON q.response_id = "
               "f.response_id AND q.prompt_index = f.prompt_index WHERE q.model = :queue_model "
               "AND q.prompt_sha256 IS NOT NULL)) ORDER BY p.margin, p.created_at DESC LIMIT :limit OFFSET :offset")
        params["queue_model"] = model
        page = params["limit"] = max(int(limit) * 4, 100)
        out: list[PredictionRecord] = []
        seen: set[str] = set()
        with self.engine.connect() as conn:
            for offset in itertools.count(0, page):
                rows = conn.execute(text(sql), {**params, "offset": offset}).all()
                for r in rows:
                    record = _decode(PredictionRecord, r)
                    if record.prompt_sha256 is not None:
                        if record.prompt_sha256 in seen:
                            continue
                        seen.add(record.prompt_sha256)
                    out.append(record)
                    if len(out) == limit:
                        return out
                if len(rows) < page:
                    return out
        return out

    def prune(self, before: float, *, model: str | None = None, feedback: bool = False) -> tuple[int, int]:
        """Delete predictions logged before `before` (Unix seconds), and with `feedback` the feedback
        given before it too. Returns (predictions deleted, feedback deleted)."""
        extra, params = ("", {"t": float(before)})
        if model:
            extra, params["m"] = " AND model = :m", model
        n_log = self._delete("prediction_log", "created_at < :t" + extra, params)
        n_fb = self._delete("prediction_feedback", "created_at < :t" + extra, params) if feedback else 0
        return n_log, n_fb

    def _delete(self, table: str, where: str, params: dict) -> int:
        """DELETE in transactions of PRUNE_CHUNK_ROWS rows on SQLite, whose one writer at a time would
        otherwise wait for the whole delete: a million rows held every other write of the server, the
        worker and the CLI for 2.7 s (QA), and past the 30 s busy timeout they fail with 'database is
        locked'. PostgreSQL's deletes do not block inserts: one statement."""
        if self.engine.dialect.name != "sqlite":
            with self.engine.begin() as conn:
                return int(conn.execute(text(f"DELETE FROM {table} WHERE {where}"), params).rowcount or 0)
        total = 0
        sql = text(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where} LIMIT :chunk)")
        while True:
            with self.engine.begin() as conn:
                n = int(conn.execute(sql, {**params, "chunk": PRUNE_CHUNK_ROWS}).rowcount or 0)
            total += n
            if n < PRUNE_CHUNK_ROWS:
                return total

    # -- feedback ------------------------------------------------------------------------------
    def add_feedback(self, items: Sequence[dict[str, Any]]) -> list[FeedbackRecord]:
        """Add feedback rows (all in one transaction: all of them or none). Each needs model, label and
        source; an id and created_at are given when missing."""
        records = []
        now = time.time()
        # The rows of one call share created_at, so their ids alone keep their order (the latest label
        # counts: a file's later line must win). Ids made within one microsecond end in random bits,
        # so they are made first and handed out sorted.
        fresh = iter(sorted(ids.new_id("fb") for item in items if not item.get("id")))
        for item in items:
            values = {c: item.get(c) for c in FEEDBACK_COLUMNS}
            values["id"] = values["id"] or next(fresh)
            values["created_at"] = float(values["created_at"] or now)
            missing = [c for c in ("model", "label", "source") if values.get(c) in (None, "")]
            if missing:
                raise InvalidInputError(f"Feedback needs {', '.join(missing)}.")
            records.append(FeedbackRecord(**values))
        if records:
            sql = (f"INSERT INTO prediction_feedback ({', '.join(FEEDBACK_COLUMNS)}) "
                   f"VALUES ({', '.join(':' + c for c in FEEDBACK_COLUMNS)})")
            with self.engine.begin() as conn:
                conn.execute(text(sql), [_encode(r.__dict__) for r in records])
        return records

    def feedback(self, model: str | None = None, *, since: float | None = None,
                 until: float | None = None) -> list[FeedbackRecord]:
        """Feedback given, oldest first."""
        where, params = self._where(model, since, until)
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM prediction_feedback" + where + " ORDER BY created_at, id"), params)
            return [_decode(FeedbackRecord, r) for r in rows]

    def latest_feedback(self, model: str) -> dict[tuple[str, int], FeedbackRecord]:
        """The latest feedback on each logged prediction of `model`: {(response id, index): feedback}."""
        out = {}
        for record in self.feedback(model):
            if record.response_id is not None:
                out[(record.response_id, int(record.prompt_index or 0))] = record
        return out

    # -- plumbing ------------------------------------------------------------------------------
    @staticmethod
    def _where(model, since, until, alias: str = "") -> tuple[str, dict]:
        col = (alias + ".") if alias else ""
        clauses, params = ["1 = 1"], {}
        if model is not None:
            clauses.append(f"{col}model = :model")
            params["model"] = model
        if since is not None:
            clauses.append(f"{col}created_at >= :since")
            params["since"] = float(since)
        if until is not None:
            clauses.append(f"{col}created_at < :until")
            params["until"] = float(until)
        return " WHERE " + " AND ".join(clauses), params


# --- the writer -----------------------------------------------------------------------------------


@dataclass
class WriterStats:
    queued: int = 0
    written: int = 0
    dropped: int = 0  # the queue was full (the database could not keep up)
    failed: int = 0  # a batch could not be written, even after retries
    batches: int = 0
    pruned: int = 0
    last_error: str | None = None


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


class PredictionLogWriter:
    """Writes prediction rows in batches from a background thread (started on the first row).

    `put(row)` never blocks and never raises: a row is a dict (or a PredictionRecord) with
    `prompt` holding the text; the thread derives the prompt's hash, length and quality flags, then
    drops the text itself when `keep_text` is False or the row says `keep_text: False` (the
    request's `store: false`). Beyond `max_queue` waiting rows, new rows are dropped and counted.
    `keep_days`: predictions older than this are deleted on start and every hour.
    """

    def __init__(self, store, *, flush_rows: int = DEFAULT_FLUSH_ROWS, flush_ms: float = DEFAULT_FLUSH_MS,
                 max_queue: int = DEFAULT_MAX_QUEUE, keep_text: bool = True, keep_days: float | None = None,
                 enrich=None):
        if flush_rows < 1 or flush_ms <= 0:
            raise InvalidInputError("The prediction log needs flush_rows >= 1 and flush_ms > 0.")
        if keep_days is not None and keep_days <= 0:
            raise InvalidInputError(f"--log-keep-days must be positive, got {keep_days}.")
        self.log = PredictionLog(store)
        self.flush_rows = int(flush_rows)
        self.flush_s = float(flush_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.keep_text = keep_text
        self.keep_days = keep_days
        self.enrich = enrich  # (prompt) -> dict of derived columns; see tunelab.server.prediction_log
        self.stats = WriterStats()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._last_prune = 0.0

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def put(self, row: dict | PredictionRecord) -> bool:
        """Queue one row; False when it was dropped (closed writer, or full queue)."""
        if self._closed:
            return False
        if self._queue.qsize() >= self.max_queue:
            self.stats.dropped += 1
            return False
        self._queue.put(row)
        self.stats.queued += 1
        if self._thread is None:
            self._start()
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row queued before this call is written (True), or `timeout` passed."""
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def start(self) -> None:
        """Start the thread now (it starts with the first row otherwise), e.g. to prune at once."""
        if not self._closed and self._thread is None:
            self._start()

    # -- the thread ----------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tunelab-prediction-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        self._maybe_prune()
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=min(60.0, PRUNE_EVERY_S))
            except queue.Empty:
                self._maybe_prune()
                continue
            batch, markers = [], []
            stop = self._take(first, batch, markers)
            deadline = time.monotonic() + self.flush_s
            while not stop and not markers and len(batch) < self.flush_rows:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
                stop = self._take(item, batch, markers)
            if stop or markers:  # drain whatever is already queued before answering a flush
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    stop = self._take(item, batch, markers) or stop
            self._write(batch)
            for marker in markers:
                marker.done.set()
            self._maybe_prune()

    @staticmethod
    def _take(item, batch: list, markers: list) -> bool:
        if item is None:
            return True
        if isinstance(item, _Flush):
            markers.append(item)
        else:
            batch.append(item)
        return False

    def _write(self, batch: list) -> None:
        if not batch:
            return
        rows = []
        for item in batch:
            try:
                rows.append(self._prepare(item))
            except Exception as exc:  # noqa: BLE001 - one bad row must not lose the batch
                self.stats.failed += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
        from sqlalchemy.exc import OperationalError

        for attempt in range(5):
            try:
                self.log.insert(rows)
                self.stats.written += len(rows)
                self.stats.batches += 1
                return
            except OperationalError as exc:  # locked or unreachable database: wait and retry
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.05 * 2**attempt)
            except Exception as exc:  # noqa: BLE001 - a bad row (e.g. a duplicate id): write the others
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                for row in rows:
                    try:
                        self.log.insert([row])
                        self.stats.written += 1
                    except Exception as single:  # noqa: BLE001
                        self.stats.failed += 1
                        self.stats.last_error = f"{type(single).__name__}: {single}"
                self.stats.batches += 1
                return
        self.stats.failed += len(rows)
        log.error("Could not write %d prediction log rows: %s", len(rows), self.stats.last_error)

    def _prepare(self, item) -> dict:
        row = dict(item.__dict__) if isinstance(item, PredictionRecord) else dict(item)
        keep = self.keep_text and row.pop("keep_text", True)
        prompt = row.get("prompt")
        if prompt is not None and self.enrich is not None:
            for key, value in self.enrich(prompt).items():
                if row.get(key) is None:
                    row[key] = value
        if not keep:
            row["prompt"] = None
            if row.get("label_probs") is None:  # free-form output may repeat the user's text
                row["prediction"] = None
        for key in ("top1_prob", "margin", "latency_ms"):
            value = row.get(key)
            if value is not None and not math.isfinite(value):
                row[key] = None
        return row

    def _maybe_prune(self) -> None:
        if self.keep_days is None:
            return
        if self._last_prune and time.monotonic() - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = time.monotonic()
        try:
            deleted, _ = self.log.prune(time.time() - self.keep_days * 86400.0)
            self.stats.pruned += deleted
        except Exception as exc:  # noqa: BLE001 - retention is retried in an hour
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
