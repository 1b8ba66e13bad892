"""`tunelab.monitoring.report.monitor` over a real prediction log: a tiny fine-tuned classifier
(trained by a real job, so it has training and validation files) served in-process, its answers
logged, feedback given, then the report read back."""

from __future__ import annotations

import json
import random

import pytest

from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.monitoring import feedback as F
from tunelab.monitoring.report import format_report, monitor, parse_time
from tunelab.monitoring.thresholds import Thresholds
from tunelab.store.predictions import PredictionLog


@pytest.fixture
def served(tiny_models, tunelab_home):
    """The trained tiny models in this test's store, and a function that sends prompts to the
    in-process server (real inference) and returns the responses."""
    from fastapi.testclient import TestClient

    from tunelab.data.readers import read_prompt_completion
    from tunelab.server import create_app

    models = tiny_models.install_trained(tunelab_home)
    app = create_app(models.store, isolate_models=False)
    http = TestClient(app)

    def send(prompts, model=models.enc):
        out = []
        for prompt in prompts:
            r = http.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 1,
                                                   "temperature": 0, "logprobs": 5},
                          headers={"Authorization": "Bearer sk-1"})
            assert r.status_code == 200, r.text
            out.append(r.json())
        app.state.tunelab.recorder.writer.flush()
        return out

    test_rows = read_prompt_completion(models.test)
    with http:
        yield models, send, test_rows


def test_monitor_report_on_served_predictions(served, tmp_path):
    models, send, test_rows = served
    responses = send([r.prompt for r in test_rows] * 2)  # 60 predictions of in-distribution text
    for res, row in list(zip(responses, test_rows * 2))[:40]:  # people label 40 of them
        F.add_feedback(models.store, response_id=res["id"], label=row.completion)
    report = monitor(models.store, models.enc, window="30")
    assert report["n"] == 60 and [w["n"] for w in report["windows"]] == [30, 30] and report["feedback"] == 40
    ref = report["reference"]
    assert ref["source"] == "validation file" and ref["n"] == 20 and not ref["cached"]
    assert report["calibrated"] is (report["temperature"] != 1.0)
    w = report["windows"][0]
    assert set(w["predicted"]) == set(models.store.get_model(models.enc).labels)
    assert w["label_drift"]["p_value"] is not None and w["confidence_drift"]["ks"] is not None
    assert w["text_drift"]["auc"] is not None and w["latency_ms"]["p50"] > 0
    assert 0 < w["expected"]["accuracy"] <= 1 and w["realized"]["n"] == 30
    # duplicates count within a window: each half is new to itself, the whole has every prompt twice
    assert report["windows"][1]["quality"]["duplicates"] == w["quality"]["duplicates"] < 0.5
    assert monitor(models.store, models.enc, window="60")["windows"][0]["quality"]["duplicates"] >= 0.5
    names = {c["name"] for c in w["checks"]}
    assert {"label_drift", "confidence_drift", "estimated_accuracy", "text_drift", "empty", "non_text",
            "truncated", "duplicates"} <= names
    json.dumps(report)  # --json
    text = format_report(report)
    assert models.enc in text and "est.acc" in text and "window(s)" in text or "No window" in text
    # the reference was scored once, then read from the cache
    assert monitor(models.store, models.enc, window="1d", text_drift=False)["reference"]["cached"]


def test_monitor_alarms_on_junk_and_plots(served, tmp_path):
    from tunelab.monitoring.plots import plot_timeline

    models, send, _ = served
    junk = [f"{random.Random(i).random():.6f} {i * 7919} {i % 13}\n\n###\n\n" for i in range(40)]
    send(junk)
    report = monitor(models.store, models.enc, window="1h")
    (w,) = report["windows"]
    assert report["alarm"] and "non_text" in w["alarms"] and "text_drift" in w["alarms"], w["alarms"]
    assert "ALARM" in format_report(report)
    png = plot_timeline(report, tmp_path / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a few rows raise nothing: too few to judge
    quiet = monitor(models.store, models.enc, window="1h", thresholds=Thresholds(min_rows=1000))
    assert not quiet["alarm"] or quiet["windows"][0]["alarms"] == ["text_drift"]


def test_monitor_without_predictions_and_bad_input(served):
    models, _, _ = served
    report = monitor(models.store, models.enc, window="1d", since=parse_time("2020-01-01"),
                     until=parse_time("2020-01-02"))
    assert report["windows"] == [] and not report["alarm"]
    assert "No predictions" in format_report(report)
    with pytest.raises(NotFoundError):
        monitor(models.store, "enc:ft-personal-2020-01-01-00-00-00")
    with pytest.raises(InvalidInputError):
        monitor(models.store, models.enc, window="fortnight")


def test_review_queue_and_export(served, tmp_path):
    models, send, test_rows = served
    responses = send([r.prompt for r in test_rows])
    queue = F.review_queue(models.store, models.enc, limit=50)
    assert len(queue) == 30 and [q.margin for q in queue] == sorted(q.margin for q in queue)
    for res, row in zip(responses[:20], test_rows):
        F.add_feedback(models.store, response_id=res["id"], label=row.completion.strip(), source="test")
    assert len(F.review_queue(models.store, models.enc, limit=50)) == 10
    # a text-only example, and the same text twice with different labels: the latest wins
    F.add_feedback(models.store, model=models.enc, text="great good love", label="5")
    F.add_feedback(models.store, model=models.enc, text="great good love\n\n###\n\n", label="4")
    result = F.export_feedback(models.store, models.enc, tmp_path / "out", holdout=0.25)
    c = result.counts
    assert c["examples"] == 21 and c["train"] + c["heldout"] == 21 and c["skipped_conflicting_labels"] == 1
    assert result.separator == "\n\n###\n\n"
    lines = [json.loads(l) for l in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    held = [json.loads(l) for l in (tmp_path / "out" / "heldout.jsonl").read_text().splitlines()]
    everything = lines + held
    assert all(r["prompt"].endswith("\n\n###\n\n") and r["completion"].startswith(" ") for r in everything)
    assert len({r["prompt"] for r in everything}) == 21
    assert {"prompt": "great good love\n\n###\n\n", "completion": " 4"} in everything
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert provenance["model"] == models.enc and len(provenance["examples"]) == 21
    assert {e["source"] for e in provenance["examples"]} == {"test", "human"}
    with pytest.raises(InvalidInputError):
        F.export_feedback(models.store, models.enc, tmp_path / "x", holdout=1.5)
    # again into the same folder without a held-out part: the first export's heldout.jsonl goes
    F.export_feedback(models.store, models.enc, tmp_path / "out", holdout=0)
    assert not (tmp_path / "out" / "heldout.jsonl").exists()
    assert PredictionLog(models.store).count(models.enc) == 30


def test_a_window_under_min_rows_raises_no_text_drift_alarm():
    """README: windows with fewer than --min-rows predictions raise no alarm. Text drift scored 25
    served prompts (its own floor is 20 per side) and alarmed on them, a quiet hour's noise."""
    import numpy as np

    from tunelab.monitoring.reference import Reference
    from tunelab.monitoring.report import WindowData, evaluate_window

    labels = [" 1", " 5"]
    english = [f"the dress fits well and the fabric is great {i}\n\n###\n\n" for i in range(200)]
    german = [f"das Kleid passt gut und der Stoff ist toll {i}\n\n###\n\n" for i in range(25)]
    reference = Reference(model="m", labels=labels, source="validation file", path="v.jsonl", sha256="0", n=200,
                          predicted_counts=[100, 100], top1=[0.9] * 200, expected={"accuracy": 0.9}, accuracy=0.9,
                          gold_counts=None, training_counts=None, texts=english)
    n = len(german)
    data = WindowData(start=0.0, end=1.0, times=[0.0] * n, latency_ms=[10.0] * n, predictions=[" 1"] * n,
                      probs=np.tile([0.9, 0.1], (n, 1)), texts=german, digests=[str(i) for i in range(n)],
                      empty=[False] * n, non_text=[False] * n, truncated=[False] * n, feedback=[None] * n)
    window = evaluate_window(data, labels, reference, Thresholds(min_rows=30))
    assert window["text_drift"]["auc"] > 0.9  # still measured and shown
    assert window["alarms"] == [] and not window["enough_rows"]
    assert "text_drift" in evaluate_window(data, labels, reference, Thresholds(min_rows=20))["alarms"]


def test_the_dashboard_reads_only_the_newest_windows(served):
    """The dashboard's monitoring page read a log of weeks whole (5 s at 200k rows) after every click
    in the review queue, and windows of 100 made thousands of table rows; it now asks for the newest
    windows only."""
    import time

    from tunelab.server.ui.service import DASHBOARD_WINDOWS, monitor_report

    models, send, test_rows = served
    send([r.prompt for r in test_rows[:5]])
    log = PredictionLog(models.store)
    (template,) = log.predictions(models.enc, limit=1)
    day = 86400.0
    old = [dict(template.__dict__, response_id=f"cmpl-old{i:06d}", created_at=time.time() - 90 * day + i * 7200)
           for i in range(1000)]  # a trickle from three months back
    log.insert(old)
    full = monitor(models.store, models.enc, window="1d", text_drift=False)
    assert len(full["windows"]) > DASHBOARD_WINDOWS
    shown = monitor_report(models.store, models.enc, "1d")
    assert 1 <= len(shown["windows"]) <= DASHBOARD_WINDOWS and shown["since"] is not None
    assert shown["windows"][-1]["start"] == full["windows"][-1]["start"]
    assert monitor(models.store, models.enc, window="1d", text_drift=False, last_windows=1)["n"] == 5
    counted = monitor_report(models.store, models.enc, "10")
    assert len(counted["windows"]) == DASHBOARD_WINDOWS and counted["n"] == 10 * DASHBOARD_WINDOWS
    newest = log.predictions(models.enc, limit=1, newest_first=True)[0].created_at
    assert counted["windows"][-1]["end_ts"] == newest  # the newest rows, not the oldest
