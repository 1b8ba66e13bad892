"""The prediction log of a real `tunelab serve` (uvicorn, sockets, the model in its own process)
with a tiny random-weight classifier, driven by the official `openai` client."""

from __future__ import annotations

import math
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.server.conftest import LABELS, PROMPT, LiveServer, wait_dead
from tunelab.store import Store
from tunelab.store.predictions import PredictionLog

pytestmark = pytest.mark.slow  # starts `tunelab serve`


@pytest.fixture
def classifier(tiny_models, tunelab_home) -> str:
    store = Store()
    model = tiny_models.register(store, "classifier", name="enc", suffix="live")
    store.engine.dispose()
    return model


def prompt(i: int) -> str:
    return f"great good dress {i % 17} fits {'small' if i % 2 else 'large'}\n\n###\n\n"


def test_1000_concurrent_requests_give_1000_rows(tunelab_home, classifier):
    server = LiveServer(tunelab_home)
    try:
        client = server.client(api_key="sk-live")

        def call(i: int) -> str:
            return client.completions.create(model=classifier, prompt=prompt(i), max_tokens=1, temperature=0,
                                             logprobs=5, user=f"user-{i % 5}").id

        with ThreadPoolExecutor(32) as pool:
            ids = list(pool.map(call, range(1000)))
        # store: false (OpenAI's field) keeps these out of the log
        for i in range(20):
            client.completions.create(model=classifier, prompt=prompt(i), max_tokens=1, extra_body={"store": False})
        time.sleep(1.0)  # > the 200 ms flush interval
    finally:
        server.stop()
    log = PredictionLog(Store())
    records = log.predictions(classifier)
    assert len(records) == 1000 and {r.response_id for r in records} == set(ids)
    for r in records:
        assert set(r.label_probs) == set(LABELS)
        assert math.isclose(sum(r.label_probs.values()), 1.0, abs_tol=1e-6)
        assert r.prediction == max(r.label_probs, key=r.label_probs.get) and r.api_key_id and r.end_user
    assert len({r.api_key_id for r in records}) == 1


def test_the_log_survives_kill_9(tunelab_home, classifier):
    """Killed mid-traffic with SIGKILL: every row the writer had flushed is there, the database is
    intact, and what is lost is at most the rows of the last flush interval."""
    server = LiveServer(tunelab_home, "--log-flush-ms", "200")
    client = server.client()
    answered = []
    stop = threading.Event()

    def worker(w: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                answered.append(client.completions.create(model=classifier, prompt=prompt(w * 1000 + i),
                                                          max_tokens=1).id)
            except openai.APIError:
                return
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        killed_at_answered = len(answered)
        assert wait_dead(server.proc.pid)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.log.close()
    db = tunelab_home / "tunelab.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = {r.response_id for r in PredictionLog(Store()).predictions(classifier)}
    assert rows and len(rows) <= len(answered) + 8  # a row may be written for an answer still on the wire
    lost = set(answered) - rows
    print(f"kill -9 after {killed_at_answered} answers: {len(rows)} rows logged, {len(lost)} answered but lost")
    # at most one flush interval's worth: well under one batch of 256 rows at this rate
    assert len(lost) < 256, (len(lost), killed_at_answered)


def test_feedback_round_trip_over_http(tunelab_home, classifier):
    server = LiveServer(tunelab_home)
    try:
        client = server.client()
        res = client.completions.create(model=classifier, prompt=PROMPT, max_tokens=1, temperature=0)
        import httpx

        got = httpx.post(f"{server.base_url}/feedback", json={"id": res.id, "label": "1", "source": "live"})
        assert got.status_code == 200 and got.json()["label"] == " 1"
        bad = httpx.post(f"{server.base_url}/feedback", json={"id": "cmpl-nope", "label": "1"})
        assert bad.status_code == 404 and bad.json()["error"]["code"] == "prediction_not_found"
        metrics = httpx.get(server.base_url.removesuffix("/v1") + "/metrics").text
        assert 'route="/v1/feedback",status="404"' in metrics and "tunelab_predicted_label_total" in metrics
    finally:
        server.stop()
