"""A server that holds (issue 15), in-process with fake models: hostile JSON bodies and lone
surrogates are 400s naming the field, bodies have a size and a time limit of their own, overload
is a 429 with Retry-After and a late answer a 503 that says to retry, failed model loads are
remembered, and the published contract (OpenAPI, OPTIONS, 405) is the one the server keeps."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time

import openai
import pytest

from tests.server.conftest import PROMPT, make_client

JSON = {"content-type": "application/json"}


def envelope(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


# --- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize("path, body, param", [
    ("/v1/completions", '{"model": "%(lm)s", "prompt": "a\\ud800b"}', "prompt"),
    ("/v1/completions", '{"model": "%(lm)s", "prompt": ["ok", "x\\udfffy"]}', "prompt[1]"),
    ("/v1/chat/completions", '{"model": "%(lm)s", "messages": [{"role": "user", "content": "\\ud83d"}]}',
     "messages[0].content"),
    ("/v1/labels/score", '{"model": "%(classifier)s", "prompt": "\\udc00"}', "prompt"),
])
def test_lone_surrogate_is_a_400_naming_the_field(http, models, caplog, path, body, param):
    with caplog.at_level(logging.WARNING):
        error = envelope(http.post(path, content=(body % models).encode(), headers=JSON), 400)
    assert error["param"] == param and error["code"] == "invalid_json"
    assert "surrogate" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("body, param, words", [
    (b'{"model": "m", "prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}", None, "nested more than 64"),
    (b'{"model": "m", "prompt": ' + b"[" * 100 + b"]" * 100 + b"}", "prompt", "nested more than 64"),
    (b'{"model": "m", "prompt": "x", "max_tokens": ' + b"9" * 10_000 + b"}", "max_tokens", "10000 digits"),
    (b'{"model": "m", "prompt": "x", "temperature": 1e999999}', "temperature", "out of range"),
    (b'{"model": "m", "prompt": "x", "temperature": NaN}', "temperature", "NaN is not a JSON number"),
    (b'{"model": "m", "prompt": "\xff\xfe"}', None, "not valid UTF-8"),
])
def test_hostile_json_bodies_are_clear_400s(http, caplog, body, param, words):
    with caplog.at_level(logging.WARNING):
        error = envelope(http.post("/v1/completions", content=body, headers=JSON), 400)
    assert error["param"] == param and words in error["message"], error
    assert "Traceback" not in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_valid_surrogate_pairs_and_plain_text_still_work(client, models):
    response = client.completions.create(model=models["lm"], prompt="emoji \U0001F600 ok", max_tokens=2, temperature=0)
    assert response.choices[0].text


def test_body_limit_of_its_own_for_non_upload_routes(store, models, fake_predictors, tmp_path):
    from tunelab.server import create_app

    app = create_app(store, loader=fake_predictors.loader, max_body_bytes=4096, max_upload_bytes=100_000)
    oa, http = make_client(app)
    with http:
        big = json.dumps({"model": models["lm"], "prompt": "x" * 5000})
        error = envelope(http.post("/v1/completions", content=big, headers=JSON), 413)
        assert error["code"] == "request_too_large" and "--max-body-mb" in error["message"]
        streamed = http.post("/v1/completions", content=iter([big[:3000].encode(), big[3000:].encode()]), headers=JSON)
        assert envelope(streamed, 413)["code"] == "request_too_large"
        upload = tmp_path / "train.jsonl"
        upload.write_text('{"prompt": "%s", "completion": " 1"}\n' % ("x" * 20_000))
        assert oa.files.create(file=open(upload, "rb"), purpose="fine-tune").bytes > 4096  # uploads keep theirs
        assert http.get("/v1/tunelab/stats").json()["settings"]["max_body_bytes"] == 4096


def test_slow_body_is_a_408():
    """At the ASGI level, with a client that sends one byte and then nothing."""
    from tunelab.server.limits import RequestLimits

    async def app(scope, receive, send):  # never reached
        raise AssertionError("the route ran")

    async def main():
        sent = []
        chunks = [{"type": "http.request", "body": b"{", "more_body": True}]

        async def receive():
            if chunks:
                return chunks.pop()
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        limits = RequestLimits(app, max_body_bytes=2**20, max_upload_bytes=2**20, read_timeout_s=0.2)
        scope = {"type": "http", "method": "POST", "path": "/v1/completions",
                 "headers": [(b"content-type", b"application/json")]}
        started = time.monotonic()
        await limits(scope, receive, send)
        return sent, time.monotonic() - started

    sent, took = asyncio.run(main())
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert b"request_timeout" in sent[1]["body"] and took < 2


# --- load: queue bound, deadlines ----------------------------------------------------------------


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_overload_is_a_429_with_retry_after(store, models, fake_predictors):
    from tunelab.server import create_app

    model = models["classifier"]
    fake_predictors.get(model).delay = 0.3
    app = create_app(store, loader=fake_predictors.loader, max_queue=2, max_batch=1, request_timeout_s=20)
    _, http = make_client(app)
    body = {"model": model, "prompt": PROMPT, "max_tokens": 1, "temperature": 0}
    with http:
        http.post("/v1/completions", json=body)  # loaded

        def ask(_):
            started = time.monotonic()
            response = http.post("/v1/completions", json=body)
            return response, time.monotonic() - started

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(ask, range(12)))
    statuses = sorted(r.status_code for r, _ in answers)
    assert set(statuses) == {200, 429} and statuses.count(429) >= 4, statuses
    for response, took in answers:
        if response.status_code == 429:
            error = envelope(response, 429)
            assert error["code"] == "queue_full" and error["type"] == "rate_limit_error"
            assert response.headers["x-should-retry"] == "true" and int(response.headers["retry-after"]) >= 1
            assert took < 1.0  # refused at once, not after waiting


@pytest.mark.slow  # seconds of waiting: kept out of the fast tier
def test_streams_are_refused_past_the_queue_bound_too(store, real_models, monkeypatch):
    # Streamed answers generate in threads of their own: with --max-queue 1, twelve concurrent
    # streams were all answered 200, none refused, however long they would wait.
    from tunelab.inference.predictor import Predictor
    from tunelab.server import create_app

    real_stream = Predictor.stream

    def slow_stream(self, *args, **kwargs):
        time.sleep(0.4)
        return real_stream(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "stream", slow_stream)
    model = real_models["lm"]
    app = create_app(store, max_queue=1, request_timeout_s=20)
    _, http = make_client(app)
    completion = {"model": model, "prompt": "good", "max_tokens": 4, "temperature": 0, "stream": True}
    chat = {"model": model, "messages": [{"role": "user", "content": "good"}], "max_tokens": 4, "stream": True}
    with http:
        assert http.post("/v1/completions", json=completion).status_code == 200  # loaded
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: http.post("/v1/completions" if i % 2 else "/v1/chat/completions",
                                                        json=completion if i % 2 else chat), range(12)))
        statuses = sorted(r.status_code for r in answers)
        assert set(statuses) == {200, 429}, statuses
        assert all(envelope(r, 429)["code"] == "queue_full" for r in answers if r.status_code == 429)
        assert all(r.text.rstrip().endswith("data: [DONE]") for r in answers if r.status_code == 200)
        assert app.state.tunelab.batchers._streaming == {}  # every admitted stream released
        assert http.post("/v1/completions", json=completion).status_code == 200


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_a_request_past_its_timeout_is_a_503_that_says_retry(store, models, fake_predictors):
    from tunelab.server import create_app

    model = models["lm"]
    app = create_app(store, loader=fake_predictors.loader, request_timeout_s=0.5)
    oa, http = make_client(app)
    with http:
        oa.completions.create(model=model, prompt="x", max_tokens=1)  # loaded
        fake_predictors.get(model).delay = 2.0
        started = time.monotonic()
        response = http.post("/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 1})
        took = time.monotonic() - started
        error = envelope(response, 503)
        assert error["code"] == "timeout" and took < 1.5
        assert response.headers["x-should-retry"] == "true" and response.headers["retry-after"] == "2"
        fake_predictors.get(model).delay = 0
        time.sleep(2.0)  # the abandoned batch ends; its answer is dropped
        assert oa.completions.create(model=model, prompt="x", max_tokens=1).choices[0].text


def test_openai_client_retries_a_503_by_itself(store, models, fake_predictors):
    from tunelab.errors import TemporarilyUnavailableError
    from tunelab.server import create_app

    model = models["lm"]
    fake = fake_predictors.get(model)
    real = fake.complete
    failures = [TemporarilyUnavailableError("crashed twice", retry_after=0, code="model_crashed")]

    def flaky(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    fake.complete = flaky
    app = create_app(store, loader=fake_predictors.loader)
    from fastapi.testclient import TestClient

    with TestClient(app) as http:
        retrying = openai.OpenAI(base_url="http://testserver/v1", api_key="k", http_client=http, max_retries=2)
        assert retrying.completions.create(model=model, prompt="x", max_tokens=1).choices[0].text
    assert not failures


# --- models that do not load ---------------------------------------------------------------------


def test_missing_weights_are_a_fast_404_without_starting_a_model(store, fake_predictors, monkeypatch, tmp_path):
    from tunelab.errors import ModelUnavailableError
    from tunelab.models import sources
    from tunelab.server import create_app

    def missing(name, suffix):
        raise ModelUnavailableError(f"The package {name} that carries this model's weights is not installed.")

    monkeypatch.setattr(sources, "dist_file", missing)
    monkeypatch.setattr(sources, "cache_dir", lambda: tmp_path)
    oa, http = make_client(create_app(store, loader=fake_predictors.loader))
    with http:
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(openai.NotFoundError) as excinfo:
                oa.completions.create(model="ada", prompt="free-form text", max_tokens=4)
        assert excinfo.value.code == "model_not_available" and "not installed" in excinfo.value.message
        with pytest.raises(openai.BadRequestError) as encoder:
            oa.completions.create(model="minilm-l6", prompt="x")
        assert encoder.value.code == "model_not_servable"
    assert time.monotonic() - started < 5
    assert fake_predictors.loads == []  # no model process (here: no loader call) for either


def test_failed_loads_are_remembered(store, models, fake_predictors):
    from tunelab.errors import ModelUnavailableError
    from tunelab.server import create_app

    model = models["classifier"]
    calls = []

    def loader(model_id, store_):
        calls.append(model_id)
        raise ModelUnavailableError(f"The weights of {model_id} are missing.")

    oa, http = make_client(create_app(store, loader=loader, load_failure_ttl_s=60))
    with http:
        for _ in range(10):
            with pytest.raises(openai.NotFoundError):
                oa.completions.create(model=model, prompt=PROMPT, max_tokens=1)
        app = http.app
        app.state.tunelab.pool.forget_failure(model)
        with pytest.raises(openai.NotFoundError):
            oa.completions.create(model=model, prompt=PROMPT, max_tokens=1)
    assert calls == [model, model]


# --- the published contract ----------------------------------------------------------------------


def test_openapi_declares_the_statuses_the_server_sends(http):
    from tunelab.server.openapi import COMMON, ROUTE_ERRORS

    spec = http.get("/openapi.json").json()
    assert {"ErrorResponse", "ErrorDetail"} <= set(spec["components"]["schemas"])
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    operations = {(method.upper(), path): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert set(operations) == set(ROUTE_ERRORS), "declare the error statuses of new routes in server/openapi.py"
    for key, op in operations.items():
        statuses = {int(s) for s in op["responses"]}
        assert 422 not in statuses, key
        assert statuses >= {200, *COMMON, *ROUTE_ERRORS[key]}, key
        for status in statuses - {200}:
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    completions = operations[("POST", "/v1/completions")]["responses"]
    assert {429, 503} <= {int(s) for s in completions} and "Retry-After" in completions["503"]["headers"]
    assert set(completions["200"]["content"]) == {"application/json", "text/event-stream"}
    assert set(operations[("POST", "/v1/chat/completions")]["responses"]["200"]["content"]) >= {"text/event-stream"}
    content = operations[("GET", "/v1/files/{file_id}/content")]["responses"]["200"]["content"]
    assert set(content) == {"application/octet-stream"}


def test_options_and_405_list_every_method_of_the_path(http):
    for path, methods in [("/v1/models/ada:ft-x", "GET, DELETE, OPTIONS"), ("/v1/files", "GET, POST, OPTIONS"),
                          ("/v1/files/file-0123456789abcdef01234567", "GET, DELETE, OPTIONS"),
                          ("/v1/completions", "POST, OPTIONS")]:
        options = http.options(path)
        assert options.status_code == 204 and options.headers["allow"] == methods, path
        wrong = http.request("PATCH", path)
        assert envelope(wrong, 405)["code"] == "method_not_allowed" and wrong.headers["allow"] == methods
    assert envelope(http.options("/v1/no/such/route"), 404)["code"] == "unknown_url"
