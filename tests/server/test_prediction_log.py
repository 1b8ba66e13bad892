"""The prediction log, feedback and /metrics through the official `openai` client and plain HTTP,
against fake models in-process (the live server with real tiny models is in
test_prediction_log_live.py)."""

from __future__ import annotations

import math

import pytest

from tests.server.conftest import LABELS, PROMPT, make_client
from tunelab.store.predictions import PredictionLog


def rows(app) -> list:
    app.state.tunelab.recorder.writer.flush()
    return PredictionLog(app.state.tunelab.store).predictions()


def test_completion_is_logged_with_its_distribution(app, client, models):
    res = client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1, temperature=0,
                                    logprobs=2, user="user-7", extra_body={"metadata": {"page": "checkout"}})
    assert len(res.choices[0].logprobs.top_logprobs[0]) == 2  # the client still gets the top-2 it asked for
    (row,) = rows(app)
    assert row.response_id == res.id and row.prompt_index == 0 and row.model == models["classifier"]
    assert row.endpoint == "completions" and row.prompt == PROMPT and row.prediction == res.choices[0].text
    assert set(row.label_probs) == set(LABELS) and math.isclose(sum(row.label_probs.values()), 1.0, abs_tol=1e-9)
    assert row.top1_prob == max(row.label_probs.values()) and row.prediction == max(row.label_probs,
                                                                                    key=row.label_probs.get)
    second = sorted(row.label_probs.values())[-2]
    assert row.margin == pytest.approx(row.top1_prob - second)
    assert row.end_user == "user-7" and row.metadata == {"page": "checkout"}
    assert row.api_key_id.startswith("key-") and "sk-test" not in row.api_key_id
    assert row.latency_ms > 0 and row.prompt_tokens > 0 and row.prompt_sha256 and row.non_text is False


def test_lm_label_probabilities_are_renormalised(app, client, models):
    client.completions.create(model=models["lm-labels"], prompt=["a\n\n###\n\n", "b\n\n###\n\n"], max_tokens=1,
                              temperature=0)
    logged = rows(app)
    assert [r.prompt_index for r in logged] == [0, 1] and logged[0].response_id == logged[1].response_id
    for r in logged:  # an lm's label probabilities sum to less than 1; the log's to 1
        assert math.isclose(sum(r.label_probs.values()), 1.0, abs_tol=1e-9)


def test_chat_label_scores_and_free_text_are_logged(app, client, http, models):
    chat = client.chat.completions.create(model=models["lm-labels"], messages=[{"role": "user", "content": "hi"}],
                                          metadata={"k": "v"}, user="u")
    scores = http.post("/v1/labels/score", json={"model": models["classifier"], "prompt": ["x", "y"],
                                                 "user": "u2", "metadata": {"a": "1"}})
    assert scores.status_code == 200 and scores.json()["id"].startswith("labelscore-")
    text = client.completions.create(model=models["lm"], prompt="Once", max_tokens=3, temperature=0)
    by_id = {}
    for r in rows(app):
        by_id.setdefault(r.response_id, []).append(r)
    (c,) = by_id[chat.id]
    assert c.endpoint == "chat.completions" and c.prediction == chat.choices[0].message.content
    assert c.metadata == {"k": "v"} and c.end_user == "u" and "user: hi" in c.prompt and c.label_probs
    s = by_id[scores.json()["id"]]
    assert [r.prediction for r in s] == [d["label"] for d in scores.json()["data"]]
    assert s[0].end_user == "u2" and s[0].metadata == {"a": "1"}
    (t,) = by_id[text.id]
    assert t.prediction == text.choices[0].text and t.label_probs is None and t.top1_prob is None


def test_store_false_writes_nothing(app, client, http, models):
    client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1, extra_body={"store": False})
    client.chat.completions.create(model=models["lm-labels"], messages=[{"role": "user", "content": "hi"}], store=False)
    http.post("/v1/labels/score", json={"model": models["classifier"], "prompt": "x", "store": False})
    assert rows(app) == []
    metrics = http.get("/metrics").text  # still counted
    assert f'tunelab_predictions_total{{endpoint="completions",model="{models["classifier"]}"}} 1.0' in metrics


def test_no_log_text_and_logging_off(store, fake_predictors, models):
    from tunelab.server import create_app

    app = create_app(store, loader=fake_predictors.loader, log_text=False)
    oa, http = make_client(app)
    with http:
        oa.completions.create(model=models["classifier"], prompt="private words\n\n###\n\n", max_tokens=1)
        oa.completions.create(model=models["lm"], prompt="private", max_tokens=2)
        logged = rows(app)
    assert [r.prompt for r in logged] == [None, None] and all(r.prompt_sha256 for r in logged)
    assert logged[0].prediction in LABELS and logged[1].prediction is None
    off = create_app(store, loader=fake_predictors.loader, prediction_log=False)
    oa, http = make_client(off)
    with http:
        oa.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1)
        assert off.state.tunelab.recorder.writer is None
        assert "tunelab_predictions_total" in http.get("/metrics").text
    assert PredictionLog(store).count() == 2


def test_metadata_limits_are_checked(client, models):
    import openai

    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1,
                                  extra_body={"metadata": {f"k{i}": "v" for i in range(17)}})
    assert err.value.body["param"] == "metadata"


# --- feedback ---------------------------------------------------------------------------------------


def test_feedback_on_a_response(app, client, http, models):
    res = client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1, temperature=0)
    predicted = res.choices[0].text
    other = next(label for label in LABELS if label != predicted)
    got = http.post("/v1/feedback", json={"id": res.id, "label": other.strip(), "source": "annotator:ann"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["object"] == "feedback" and body["id"].startswith("fb-") and body["label"] == other
    assert body["prediction"] == predicted and body["correct"] is False and body["source"] == "annotator:ann"
    again = http.post("/v1/feedback", json={"id": res.id, "label": predicted}).json()
    assert again["correct"] is True and again["source"] == "human"
    (row,) = rows(app)
    assert row.prediction == predicted  # the model's answer is never overwritten
    log = PredictionLog(app.state.tunelab.store)
    assert [f.label for f in log.feedback(models["classifier"])] == [other, predicted]
    assert log.feedback(models["classifier"])[0].prompt == PROMPT


def test_feedback_for_a_text_and_bad_feedback(http, client, models):
    ok = http.post("/v1/feedback", json={"model": models["classifier"], "text": "new review", "label": "5"})
    assert ok.status_code == 200 and ok.json()["label"] == " 5" and ok.json()["response_id"] is None

    def error(body, status):
        r = http.post("/v1/feedback", json=body)
        assert r.status_code == status, r.text
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        return r.json()["error"]

    e = error({"id": "cmpl-000000000000000000000000", "label": "4"}, 404)
    assert e["param"] == "id" and e["code"] == "prediction_not_found"
    res = client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1)
    e = error({"id": res.id, "label": "7"}, 400)
    assert e["param"] == "label" and "' 1', ' 2'" in e["message"]
    assert error({"id": res.id, "index": 3, "label": "4"}, 404)["param"] == "id"
    assert error({"model": "nope:ft-x-2026-01-01-00-00-00", "text": "t", "label": "4"}, 404)["param"] == "model"
    assert error({"label": "4"}, 400)["param"] == "id"
    assert error({"id": res.id, "text": "t", "label": "4"}, 400)["param"] == "text"
    assert error({"id": res.id, "label": "4", "colour": "red"}, 400)["param"] == "colour"
    assert error({"id": res.id}, 400)["param"] == "label"



def test_feedback_takes_a_star_rating_as_a_number(http, client, models):
    """Amazon's `stars` is an int; `{"label": 4}` was a 400 ("should be a valid string") while
    `tunelab feedback import` took the same number from a file. A bool or a float is still refused."""
    res = client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1, temperature=0)
    got = http.post("/v1/feedback", json={"id": res.id, "label": 4})
    assert got.status_code == 200, got.text
    assert got.json()["label"] == " 4"
    for bad in (True, 4.5, None):
        r = http.post("/v1/feedback", json={"id": res.id, "label": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "label", r.text
        assert "expected a string or an integer" in r.json()["error"]["message"]

def test_feedback_right_after_the_answer_finds_it(store, fake_predictors, models):
    """A response whose log row is still queued (long flush interval) is found: the route flushes."""
    from tunelab.server import create_app

    app = create_app(store, loader=fake_predictors.loader, log_flush_ms=60_000, log_flush_rows=10_000)
    oa, http = make_client(app)
    with http:
        res = oa.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1)
        assert http.post("/v1/feedback", json={"id": res.id, "label": "4"}).status_code == 200


# --- /metrics ---------------------------------------------------------------------------------------


def test_prometheus_metrics(client, http, models):
    for _ in range(3):
        client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1, temperature=0)
    http.get("/v1/nowhere")
    text = http.get("/metrics")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    body = text.text
    assert 'tunelab_http_requests_total{method="POST",route="/v1/completions",status="200"} 3.0' in body
    assert 'tunelab_http_errors_total{route="unmatched",status="404"} 1.0' in body
    assert 'tunelab_http_request_duration_seconds_bucket{le="+Inf",route="/v1/completions"} 3.0' in body
    assert f'tunelab_batch_prompts_count{{model="{models["classifier"]}"}}' in body
    assert "tunelab_predicted_label_total{" in body and f'model="{models["classifier"]}"' in body
    assert "tunelab_queue_prompts" in body and "tunelab_loaded_models 1.0" in body
    assert "tunelab_prediction_log_queue_rows" in body and 'tunelab_prediction_log_rows_total{outcome="written"}' in body
    labels = [line for line in body.splitlines() if line.startswith("tunelab_predicted_label_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in labels) == 3.0


def test_metrics_labels_stay_bounded_and_idle_queues_read_zero(client, http, models):
    """Made-up HTTP methods (uvicorn passes any token on, to be answered 405) count as "other", not
    a series each; the queue gauge of a model served before still reads 0 once its batcher is idle,
    rather than vanishing (Grafana shows "no data", absent() alerts fire)."""
    client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1, temperature=0)
    for method in ("FOO1", "FOO2", "BREW"):
        assert http.request(method, "/v1/models").status_code == 405
    body = http.get("/metrics").text
    assert 'tunelab_http_requests_total{method="other",route="/v1/models",status="405"} 3.0' in body
    assert "FOO1" not in body and "BREW" not in body
    assert f'tunelab_queue_prompts{{model="{models["classifier"]}"}} 0.0' in body


def test_metrics_need_the_api_key_when_keys_are_set(store, fake_predictors):
    from fastapi.testclient import TestClient

    from tunelab.server import create_app

    with TestClient(create_app(store, loader=fake_predictors.loader, api_keys=["sk-1"])) as http:
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer sk-1"}).status_code == 200


def test_only_fine_tuned_models_are_logged(store):
    """A base model served as is (no metadata: smollm2-135m's plain completions) is not logged."""
    from types import SimpleNamespace

    from tunelab.server.prediction_log import Caller, PredictionRecorder
    from tunelab.store.predictions import PredictionLogWriter

    writer = PredictionLogWriter(store)
    recorder = PredictionRecorder(writer)
    base = SimpleNamespace(meta=None, labels=None, is_classification=False)
    tuned = SimpleNamespace(meta={"method": "lm"}, labels=None, is_classification=False)
    for predictor in (base, tuned):
        recorder.record(Caller.unknown(), endpoint="completions", response_id=f"cmpl-{id(predictor)}", model="m",
                        predictor=predictor, prompts=["p"], predictions=["text"], logprobs=[None],
                        prompt_tokens=[1])
    writer.close()
    assert [r.response_id for r in PredictionLog(store).predictions()] == [f"cmpl-{id(tuned)}"]
