"""Errors arrive as the openai client's exception types, in one envelope, never as a 500; keys,
body limits, id validation and CORS close the server to everything else."""

from __future__ import annotations

import json

import openai
import pytest

from tests.server.conftest import make_client


def assert_envelope(response, status: int, type_: str = "invalid_request_error") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == type_ and body["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
    return body["error"]


def test_dashboard_report_views_stay_in_the_reports_folder(store, http):
    """The report folder was <home>/ui-reports/<model>/<test file> with '..' kept as it is, so model
    '..' and test_file '..' read <home>/../confusion_matrix.png, and model '..' listed every
    metrics.json one folder down from <home>."""
    (store.home / "ui-reports").mkdir(parents=True, exist_ok=True)
    (store.home.parent / "confusion_matrix.png").write_bytes(b"\x89PNG outside the store")
    (store.home / "secret").mkdir()
    (store.home / "secret" / "metrics.json").write_text('{"accuracy": 0.5}')
    (store.home / "secret" / "ui.json").write_text('{"test_file": "x"}')
    for model, test_file in ((".."), ("..")), (".", ".."), ("..", "."):
        response = http.get("/ui/api/evaluations/image",
                            params={"model": model, "test_file": test_file, "name": "confusion_matrix"})
        assert response.status_code == 404 and b"outside" not in response.content, (model, test_file)
    assert http.get("/ui/api/evaluations", params={"model": ".."}).json()["data"] == []


def test_client_exception_types(client, models):
    with pytest.raises(openai.NotFoundError) as unknown:
        client.completions.create(model="gpt-nonexistent", prompt="x", max_tokens=1)
    assert unknown.value.code == "model_not_found" and unknown.value.param == "model"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.completions.create(model=models["classifier"], prompt="x", max_tokens=1, logprobs=21)
    assert too_many.value.param == "logprobs"
    with pytest.raises(openai.BadRequestError) as empty:
        client.completions.create(model=models["classifier"], prompt=[], max_tokens=1)
    assert empty.value.param == "prompt"
    with pytest.raises(openai.BadRequestError) as ids:  # the fake tokenizer cannot decode token ids
        client.completions.create(model=models["classifier"], prompt=[[1, 2, 3]], max_tokens=1)
    assert ids.value.param == "prompt"
    with pytest.raises(openai.BadRequestError) as extra:
        client.completions.create(model=models["classifier"], prompt="x", extra_body={"bogus": 1})
    assert "Unrecognized request argument" in extra.value.message
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=models["classifier"], prompt="x", frequency_penalty=1.0)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="minilm-l6", prompt="x")  # an encoder base model has no completions
    with pytest.raises(openai.BadRequestError) as context:
        client.completions.create(model=models["lm"], prompt="good " * 300, max_tokens=16)
    assert context.value.code == "context_length_exceeded"


def test_every_answer_has_a_request_id_the_client_shows(client, models):
    """OpenAI's x-request-id (the client's `_request_id`, an error's `request_id`) and
    openai-processing-ms; tunelab sent neither, so code logging the id logged None."""
    first = client.completions.create(model=models["classifier"], prompt="x", max_tokens=1)
    second = client.models.list()
    assert first._request_id.startswith("req_") and second.data and first._request_id != second._request_id
    raw = client.chat.completions.with_raw_response.create(model=models["lm"], messages=[{"role": "user", "content": "hi"}],
                                                           max_tokens=1)
    assert raw.headers["x-request-id"].startswith("req_") and int(raw.headers["openai-processing-ms"]) >= 0
    with client.completions.with_streaming_response.create(model=models["lm"], prompt="x", max_tokens=2,
                                                           stream=True) as streamed:
        assert streamed.headers["x-request-id"].startswith("req_") and list(streamed.iter_lines())
    with pytest.raises(openai.NotFoundError) as unknown:
        client.models.retrieve("no-such-model")
    assert unknown.value.request_id.startswith("req_")
    with pytest.raises(openai.NotFoundError) as url:
        client.get("/no/such/route", cast_to=object)
    assert url.value.request_id.startswith("req_")


def test_malformed_and_invalid_bodies_are_400(http, models):
    error = assert_envelope(http.post("/v1/completions", content=b'{"model": ', headers={"content-type": "application/json"}), 400)
    assert "JSON" in error["message"]
    error = assert_envelope(http.post("/v1/completions", json={"prompt": "x"}), 400)
    assert error["param"] == "model"
    assert_envelope(http.post("/v1/completions", json=["not", "an", "object"]), 400)
    assert_envelope(http.post("/v1/completions", json={"model": models["classifier"], "prompt": "x", "n": 0}), 400)
    assert_envelope(http.post("/v1/fine_tuning/jobs", json={"model": "ada"}), 400)
    assert_envelope(http.get("/v1/fine_tuning/jobs", params={"limit": "lots"}), 400)
    assert_envelope(http.post("/v1/chat/completions", json={"model": models["lm"], "messages": []}), 400)
    assert_envelope(http.post("/v1/chat/completions", json={"model": models["lm"], "messages": [{"role": "robot", "content": "x"}]}), 400)



def test_labels_score_takes_no_more_prompts_than_completions(http, models):
    """/v1/completions refused more than 2048 prompts; /v1/labels/score took any number (500,000
    short ones fit in 2 MB), and a request alone in the queue is always admitted."""
    many = assert_envelope(http.post("/v1/labels/score", json={"model": models["classifier"], "prompt": ["x"] * 2049}), 400)
    assert many["param"] == "prompt" and "at most 2048" in many["message"]
    ok = http.post("/v1/labels/score", json={"model": models["classifier"], "prompt": ["x"] * 2048})
    assert ok.status_code == 200 and len(ok.json()["data"]) == 2048


def test_a_value_of_no_accepted_type_names_the_field_and_the_types(http, models):
    """`prompt: 123` matched none of prompt's four types: the message names 'prompt' and what it takes,
    not pydantic's first member ('prompt.str') and "(and 3 more problem(s))"."""
    for bad in (123, None, ["a", 1]):
        error = assert_envelope(http.post("/v1/completions", json={"model": models["classifier"], "prompt": bad}), 400)
        assert error["param"] == "prompt", error
        assert "expected a string, an array of strings" in error["message"] and "more problem" not in error["message"]
    error = assert_envelope(http.post("/v1/fine_tuning/jobs", json={"model": "ada", "training_file": "file-x",
                                                                   "hyperparameters": {"n_epochs": "three"}}), 400)
    assert error["param"] == "hyperparameters.n_epochs"
    assert "expected 'auto' or an integer" in error["message"] and '"three"' in error["message"]

def test_not_found_everywhere(http):
    error = assert_envelope(http.get("/v1/no/such/route"), 404)
    assert error["code"] == "unknown_url"
    assert_envelope(http.get("/v1/files/file-0123456789abcdef01234567"), 404)
    assert_envelope(http.get("/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567"), 404)
    assert_envelope(http.get("/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567/events"), 404)
    assert_envelope(http.get("/v1/fine-tunes/ft-0123456789abcdef01234567"), 404)
    assert_envelope(http.delete("/v1/models/nope"), 404)
    assert_envelope(http.put("/v1/models"), 405)


@pytest.mark.parametrize("bad_id", ["..%2F..%2Ftunelab.db", "file-..", "..", "file-abc%2F..%2F..%2Fetc",
                                    "ftjob-../../x", "%2Fetc%2Fpasswd"])
def test_ids_never_reach_paths(http, bad_id):
    for path in (f"/v1/files/{bad_id}", f"/v1/files/{bad_id}/content", f"/v1/fine_tuning/jobs/{bad_id}",
                 f"/v1/fine_tuning/jobs/{bad_id}/checkpoints"):
        response = http.get(path)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert "error" in response.json()


def test_upload_is_validated_and_names_the_line(client, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": " 1"}\n{"prompt": "b"}\nnot json\n')
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.files.create(file=open(bad, "rb"), purpose="fine-tune")
    message = excinfo.value.message
    assert "bad.jsonl" in message and "line 3" in message and "tmp" not in message.split("bad.jsonl")[0][-5:]
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"prompt": "a", "completion": " 1"}\n{"prompt": "b"}\n')
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.files.create(file=open(missing, "rb"), purpose="fine-tune")
    assert "missing.jsonl:2" in excinfo.value.message and "completion" in excinfo.value.message
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "a", "completion": " 1"}\n')
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.files.create(file=open(good, "rb"), purpose="assistants")
    assert excinfo.value.param == "purpose"
    assert client.files.list().data == []


def test_files_crud(client, tmp_path):
    import gzip

    path = tmp_path / "data.csv"
    path.write_text("prompt,completion\nhello, 1\nbye, 2\n")
    uploaded = client.files.create(file=open(path, "rb"), purpose="fine-tune")
    assert uploaded.filename == "data.csv" and uploaded.bytes == path.stat().st_size
    zipped = tmp_path / "more.jsonl.gz"
    zipped.write_bytes(gzip.compress(b'{"prompt": "x", "completion": " 1"}\n'))
    unzipped = client.files.create(file=open(zipped, "rb"), purpose="fine-tune")
    assert unzipped.filename == "more.jsonl"
    assert client.files.content(unzipped.id).content == b'{"prompt": "x", "completion": " 1"}\n'
    newest_first = [f.id for f in client.files.list()]
    assert sorted(newest_first) == sorted([unzipped.id, uploaded.id])
    assert [f.id for f in client.files.list(order="asc")] == newest_first[::-1]
    one = client.files.list(limit=1)
    assert [f.id for f in one.data] == newest_first[:1] and one.has_more
    assert [f.id for f in client.files.list(limit=1, after=newest_first[0]).data] == newest_first[1:]
    assert client.files.retrieve(uploaded.id).filename == "data.csv"
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_oversize_upload_is_413(store, tmp_path):
    from tunelab.server import create_app

    oa, http = make_client(create_app(store, max_upload_bytes=10_000, isolate_models=False))
    big = tmp_path / "big.jsonl"
    big.write_text('{"prompt": "%s", "completion": " 1"}\n' % ("x" * 20_000))
    with http:
        with pytest.raises(openai.APIStatusError) as excinfo:
            oa.files.create(file=open(big, "rb"), purpose="fine-tune")
        assert excinfo.value.status_code == 413
        # without Content-Length the running count stops it too
        chunks = iter([b"x" * 6000, b"x" * 6000])
        response = http.post("/v1/completions", content=chunks, headers={"content-type": "application/json"})
        assert_envelope(response, 413)


def test_gzip_upload_may_not_decompress_beyond_the_upload_limit(store, tmp_path):
    """The limit counted the compressed bytes only: 200 bytes of gzip became 200 KB on disk (a few
    MB, gigabytes), before the file was even read. Decompressed, an upload keeps the limit too."""
    import gzip

    from fastapi.testclient import TestClient

    from tunelab.server import create_app

    bomb = gzip.compress(b'{"prompt": "x", "completion": " 1"}\n' + b" " * 200_000)
    assert len(bomb) < 2_000
    with TestClient(create_app(store, max_upload_bytes=10_000, isolate_models=False)) as http:
        for path in ("/v1/files", "/ui/api/datasets/inspect"):
            response = http.post(path, files={"file": ("bomb.jsonl.gz", bomb)}, data={"purpose": "fine-tune"})
            error = assert_envelope(response, 413)
            assert error["code"] == "request_too_large" and "decompresses" in error["message"], error
        small = gzip.compress(b'{"prompt": "a", "completion": " 1"}\n{"prompt": "b", "completion": " 2"}\n')
        ok = http.post("/v1/files", files={"file": ("ok.jsonl.gz", small)}, data={"purpose": "fine-tune"})
        assert ok.status_code == 200, ok.text


def test_api_keys(store, models):
    from tunelab.server import create_app

    app = create_app(store, api_keys=["sk-one", "sk-two"], isolate_models=False)
    good, http = make_client(app, api_key="sk-two")
    bad, _ = make_client(app, api_key="sk-three")
    with http:
        assert any(m.id == models["classifier"] for m in good.models.list())
        with pytest.raises(openai.AuthenticationError) as excinfo:
            bad.models.list()
        assert excinfo.value.code == "invalid_api_key"
        for method, path in [("GET", "/v1/models"), ("POST", "/v1/completions"), ("GET", "/v1/files"),
                             ("POST", "/v1/files"), ("GET", "/v1/fine-tunes"), ("GET", "/v1/no/such/route"),
                             ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/v1/tunelab/stats")]:
            error = assert_envelope(http.request(method, path), 401, "authentication_error")
            assert error["code"] == "missing_api_key"
            assert_envelope(http.request(method, path, headers={"Authorization": "Bearer nope"}), 401,
                            "authentication_error")
            assert_envelope(http.request(method, path, headers={"Authorization": "Basic sk-one"}), 401,
                            "authentication_error")


def test_cors_closed_by_default_and_opened_per_origin(store):
    from fastapi.testclient import TestClient

    from tunelab.server import create_app

    with TestClient(create_app(store)) as http:
        response = http.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert_envelope(response, 403, "permission_error")
        assert "access-control-allow-origin" not in response.headers
        preflight = http.options("/v1/completions", headers={"Origin": "https://evil.example",
                                                             "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
        assert http.get("/v1/models", headers={"Origin": "http://testserver"}).status_code == 200  # same origin
    with TestClient(create_app(store, cors_origins=["http://localhost:3000"])) as http:
        ok = http.get("/v1/models", headers={"Origin": "http://localhost:3000"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        preflight = http.options("/v1/completions", headers={"Origin": "http://localhost:3000",
                                                             "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 200
        assert_envelope(http.get("/v1/models", headers={"Origin": "https://evil.example"}), 403, "permission_error")


def test_loopback_server_refuses_other_hosts(store):
    from fastapi.testclient import TestClient

    from tunelab.server import create_app

    with TestClient(create_app(store, loopback_only=True), base_url="http://127.0.0.1:8000") as http:
        assert http.get("/v1/models").status_code == 200
        assert http.get("/v1/models", headers={"Host": "localhost:8000"}).status_code == 200
        assert http.get("/v1/models", headers={"Host": "[::1]:8000"}).status_code == 200
        assert_envelope(http.get("/v1/models", headers={"Host": "attacker.example"}), 403, "permission_error")
        # DNS rebinding with a name that merely starts like a loopback address (its owner points it
        # at 127.0.0.1, and the page's Origin then matches its Host): refused, not taken for 127.x
        for host in ("127.0.0.1.attacker.example:8000", "127.attacker.example"):
            response = http.get("/v1/models", headers={"Host": host, "Origin": f"http://{host}"})
            assert_envelope(response, 403, "permission_error")
        assert http.get("/v1/models", headers={"Host": "127.0.0.2:8000"}).status_code == 200


def test_unexpected_errors_are_500_envelopes(store, models, monkeypatch):
    from fastapi.testclient import TestClient

    from tunelab.server import create_app
    from tunelab.server.models import service

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(service, "list_models", boom)
    with TestClient(create_app(store), raise_server_exceptions=False) as http:
        error = assert_envelope(http.get("/v1/models"), 500, "server_error")
        assert "kaboom" in error["message"]


def test_openapi_documents_the_extensions(http):
    spec = http.get("/openapi.json").json()
    assert "/v1/labels/score" in spec["paths"]
    assert "every label" in json.dumps(spec["paths"]["/v1/labels/score"]).lower()
    assert "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events" in spec["paths"]
