"""The dashboard's server side, in-process: page shells (no key, no data, a strict CSP, escaped path
values), its JSON endpoints behind the key (prepare_data's report, results rows, separator,
evaluation reports, Table 4.1), and that the templates and static files ship with the package.
The pages' behaviour in a real browser is tests/server/ui/test_dashboard.py."""

from __future__ import annotations

import fnmatch
import io
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import REPO_ROOT
from tests.helpers.tiny_models import write_classification_jsonl

KEY = "sk-ui-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
PAGES = ["/ui", "/ui/", "/ui/new", "/ui/models", "/ui/playground", "/ui/monitor", "/ui/jobs/ftjob-abc"]


@pytest.fixture
def ui(store, fake_predictors):
    from tunelab.server import create_app

    with TestClient(create_app(store, api_keys=[KEY], loader=fake_predictors.loader)) as http:
        yield http


def upload(ui, name: str, data: bytes) -> str:
    response = ui.post("/v1/files", headers=AUTH, files={"file": (name, io.BytesIO(data))}, data={"purpose": "fine-tune"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def raw_csv(n: int = 40) -> bytes:
    """Classification rows as people write them: no separator, labels without the leading space."""
    words = {"1": "awful terrible", "2": "bad poor", "3": "okay fine", "4": "good nice", "5": "great perfect"}
    lines = ["prompt,completion"]
    for i in range(n):
        label = str(i % 5 + 1)
        lines.append(f"\"{words[label]} dress number {i}\",{label}")
    return ("\n".join(lines) + "\n").encode()


def test_pages_need_no_key_and_carry_a_strict_policy(ui):
    for path in PAGES:
        response = ui.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert "set-cookie" not in response.headers
        assert "http://" not in response.text and "https://" not in response.text  # nothing from elsewhere
    assert ui.get("/ui/static/js/main.js").status_code == 200
    assert ui.get("/ui/static/style.css").headers["content-type"].startswith("text/css")


def test_data_needs_the_key(ui):
    for path in ("/ui/api/evaluations", "/ui/api/separator?model=x", "/ui/api/jobs/ftjob-abc/results",
                 "/v1/fine_tuning/jobs"):
        response = ui.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "missing_api_key"
    assert ui.get("/ui/api/evaluations", headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
    assert ui.get("/ui/api/evaluations", headers=AUTH).json() == {"object": "list", "data": []}
    # POSTs under /ui are never public, whatever the path
    assert ui.post("/ui/new").status_code == 401


def test_path_values_are_escaped(ui):
    response = ui.get('/ui/jobs/"><img src=x onerror=alert(1)>')
    assert response.status_code == 200
    assert "<img src=x" not in response.text and "&lt;img src=x onerror=alert(1)&gt;" in response.text


def test_an_unknown_dashboard_address_is_a_page_in_words(ui):
    """A mistyped or outdated link under /ui is a 404 page with the navigation, not the API's JSON."""
    for path in ("/ui/nope", "/ui/job/ftjob-abc", "/ui/models/extra"):
        response = ui.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "Page not found" in response.text and f"There is no dashboard page at <code>{path}</code>" in response.text
        assert 'href="/ui/new"' in response.text
    assert "&lt;script&gt;" in ui.get("/ui/<script>x</script>").text  # the path is shown as text
    # a script's address stays the API's 404 in JSON (with the key, as every /ui/api/ route)
    for method, path in (("GET", "/ui/api/nope"), ("POST", "/ui/api/nope"), ("POST", "/ui/nope")):
        response = ui.request(method, path, headers=AUTH)
        assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url", (method, path)
    assert ui.get("/ui/static/js/nope.js").status_code == 404
    assert ui.get("/ui/static/js/main.js").status_code == 200


def test_cross_origin_calls_stay_refused(ui):
    response = ui.get("/ui/api/evaluations", headers={**AUTH, "Origin": "http://evil.example"})
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers


def test_prepare_report_proposes_fixes_and_splits(ui):
    file_id = upload(ui, "reviews.csv", raw_csv(40))
    report = ui.post(f"/ui/api/files/{file_id}/prepare", headers=AUTH, json={"split": True}).json()
    assert report["format"] == "csv" and report["n_rows"] == 40 and report["classification"]
    assert [c["label"] for c in report["classes"]] == [" 1", " 2", " 3", " 4", " 5"]  # after the leading-space fix
    assert all(c["count"] == 8 for c in report["classes"])
    assert [a["key"] for a in report["actions"]] == ["add_separator", "add_leading_space"]
    leading = report["actions"][1]
    assert leading["n_rows"] == 40 and leading["rows"][:2] == [2, 3]  # file lines (line 1 is the header)
    assert all(a["applied"] for a in report["actions"]) and report["changed"]
    assert report["split"]["n_train"] + report["split"]["n_valid"] == 40 and report["split"]["stratified"]
    train, valid = report["prepared"]
    assert train["role"] == "train" and train["filename"] == "reviews_prepared_train.jsonl"
    assert len(train["text"].splitlines()) == report["split"]["n_train"]
    assert len(valid["text"].splitlines()) == report["split"]["n_valid"]
    # the prepared text is a valid upload, and what the page sends on
    assert upload(ui, train["filename"], train["text"].encode()).startswith("file-")

    none = ui.post(f"/ui/api/files/{file_id}/prepare", headers=AUTH, json={"accept": [], "split": False}).json()
    assert not any(a["applied"] for a in none["actions"] if not a["necessary"])
    assert none["split"] is None and len(none["prepared"]) == 1
    assert none["prepared"][0]["filename"] == "reviews_prepared.jsonl"


def test_prepare_errors_name_the_file(ui):
    assert ui.post("/ui/api/files/file-nope/prepare", headers=AUTH, json={}).status_code == 400
    bad = ui.post("/ui/api/files/x/prepare", headers=AUTH, json={"split": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"]


def amazon_rows(n: int = 50) -> bytes:
    import json

    words = {1: "awful broken", 2: "poor flimsy", 3: "okay average", 4: "good sturdy", 5: "great perfect"}
    return "".join(json.dumps({"review_id": f"en_{i}", "stars": i % 5 + 1, "review_body": f"{words[i % 5 + 1]} kettle {i}",
                               "review_title": f"t{i}", "language": "en", "product_category": ["home", "toy"][i % 2]}) + "\n"
                   for i in range(n)).encode()


def test_a_raw_table_is_refused_as_such_then_built_into_files(ui):
    refused = ui.post("/v1/files", headers=AUTH, files={"file": ("dataset_en_train.json", io.BytesIO(amazon_rows()))},
                      data={"purpose": "fine-tune"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "raw_table"
    assert "--preset amazon-stars" in refused.json()["error"]["message"]  # the CLI's way, for API users

    raw = {"file": ("dataset_en_train.json", io.BytesIO(amazon_rows()))}
    table = ui.post("/ui/api/datasets/inspect", headers=AUTH, files=raw).json()
    assert table["n_rows"] == 50 and "review_body" in table["columns"]
    assert [p["name"] for p in table["presets"] if p["fits"]] == ["amazon-stars", "amazon-category"]
    assert table["presets"][0]["text_columns"] == ["review_title", "review_body"]

    built = ui.post("/ui/api/datasets/build", headers=AUTH, data={"preset": "amazon-stars", "train_size": "30"},
                    files={"file": ("dataset_en_train.json", io.BytesIO(amazon_rows()))}).json()
    assert built["labels"] == ["1", "2", "3", "4", "5"] and built["ordinal"]
    roles = {f["role"]: f for f in built["files"]}
    assert roles["train"]["n_rows"] == 30 and roles["valid"]["n_rows"] == 5 and roles["test"]["n_rows"] == 5
    assert roles["train"]["filename"] == "dataset_en_train_train.jsonl"
    assert ui.get("/v1/files", headers=AUTH).json()["data"] == []  # inspecting and building stored nothing
    # What it built is a prompt/completion file that /v1/files takes as it is.
    upload(ui, roles["train"]["filename"], roles["train"]["text"].encode())


def test_building_from_a_raw_table_says_what_to_choose(ui):
    def build(**data):
        response = ui.post("/ui/api/datasets/build", headers=AUTH, data=data,
                           files={"file": ("reviews.json", io.BytesIO(amazon_rows()))})
        assert response.status_code == 400
        return response.json()["error"]["message"]

    assert build() == "Choose a preset, or the text column(s) and the label column."
    assert "Unknown preset 'stars'" in build(preset="stars")
    message = build(text_columns="review_body,body", label_column="stars")
    assert "reviews.json: no column `body`" in message and "tunelab-build" not in message
    empty = ui.post("/ui/api/datasets/inspect", headers=AUTH, files={"file": ("reviews.json", io.BytesIO(b""))})
    assert empty.status_code == 400 and "reviews.json is empty" in empty.json()["error"]["message"]


def test_results_of_unknown_job_are_a_404(ui):
    response = ui.get("/ui/api/jobs/ftjob-nope/results", headers=AUTH)
    assert response.status_code == 404 and "ftjob-nope" in response.json()["error"]["message"]


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_evaluate_keeps_the_report_and_compare_builds_table_4_1(store, tiny_models, tmp_path):
    """Real tiny random-weight models, in-process: evaluate, list, fetch a PNG, compare with baselines."""
    from tunelab.server import create_app

    clf = tiny_models.register(store, "classifier", name="enc", suffix="a")
    other = tiny_models.register(store, "classifier", name="enc", suffix="b")
    with TestClient(create_app(store, api_keys=[KEY], isolate_models=False)) as ui:
        test_id = upload(ui, "test.jsonl", write_classification_jsonl(tmp_path / "t.jsonl", 20, seed=3).read_bytes())
        train_id = upload(ui, "train.jsonl", write_classification_jsonl(tmp_path / "tr.jsonl", 40).read_bytes())
        report = ui.post("/ui/api/evaluations", headers=AUTH,
                         json={"model": clf, "test_file": test_id, "train_file": train_id}).json()
        assert report["model"] == clf and report["n"] == 20 and 0 <= report["accuracy"] <= 1
        assert report["images"] == ["confusion_matrix", "reliability", "per_class_f1"]
        assert set(report["baselines"]) >= {"majority"}
        listed = ui.get("/ui/api/evaluations", headers=AUTH).json()["data"]
        assert [(r["model"], r["test_file"], r["accuracy"]) for r in listed] == [(clf, test_id, report["accuracy"])]
        png = ui.get("/ui/api/evaluations/image", headers=AUTH,
                     params={"model": clf, "test_file": test_id, "name": "confusion_matrix"})
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert ui.get("/ui/api/evaluations/image", headers=AUTH,
                      params={"model": clf, "test_file": test_id, "name": "../metrics"}).status_code == 400
        assert ui.get("/ui/api/evaluations/image", headers=AUTH,
                      params={"model": other, "test_file": test_id, "name": "reliability"}).status_code == 404

        table = ui.post("/ui/api/compare", headers=AUTH,
                        json={"models": [clf, other], "test_file": test_id, "train_file": train_id}).json()
        assert table["columns"][:2] == [clf, other] and len(table["columns"]) == 4  # + majority and TF-IDF
        accuracy = next(r for r in table["rows"] if r["key"] == "accuracy")
        assert accuracy["values"][clf] == pytest.approx(report["accuracy"])  # the kept report, reused
        missing = ui.post("/ui/api/evaluations", headers=AUTH, json={"model": "enc:ft-personal:nope-2020-01-01-00-00-00",
                                                                     "test_file": test_id})
        assert missing.status_code == 404
        assert ui.post("/ui/api/evaluations", headers=AUTH,
                       json={"model": clf, "test_file": "/etc/passwd"}).status_code == 400  # ids only, never paths


def test_evaluate_and_compare_take_model_ids_not_server_paths(ui, tmp_path):
    """Completions serve store models and packaged base names only, yet the dashboard's evaluate and
    compare loaded whatever `model` named: any Hugging Face folder on the server's disk (loaded into
    the server process), or a hub id to download."""
    from tests.helpers.tiny_models import build_tiny_decoder

    folder = build_tiny_decoder(tmp_path / "someone-elses-model")
    test_id = upload(ui, "test.jsonl", write_classification_jsonl(tmp_path / "t.jsonl", 20, seed=3).read_bytes())
    for model in (str(folder), "someone/private-model"):
        response = ui.post("/ui/api/evaluations", headers=AUTH, json={"model": model, "test_file": test_id})
        assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found", response.text
        response = ui.post("/ui/api/compare", headers=AUTH, json={"models": [model], "test_file": test_id})
        assert response.status_code == 404 and response.json()["error"]["param"] == "models", response.text
    assert not (folder.parent / "ui-reports").exists()


def test_templates_and_static_files_ship_with_the_package():
    """A non-editable install carries only what package-data names: every file the UI serves must match."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tunelab.server.ui"]
    root = REPO_ROOT / "src" / "tunelab" / "server" / "ui"
    served = [p.relative_to(root).as_posix() for d in ("templates", "static") for p in (root / d).rglob("*")
              if p.is_file()]
    assert served and {Path(p).parts[0] for p in served} == {"templates", "static"}
    unshipped = [p for p in served if not any(fnmatch.fnmatch(p, pat) and p.count("/") == pat.count("/")
                                              for pat in patterns)]
    assert not unshipped, f"add these to [tool.setuptools.package-data] tunelab.server.ui: {unshipped}"
