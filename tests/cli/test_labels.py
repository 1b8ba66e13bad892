"""`tunelab labels inspect|merge|issues` end to end, bad input (clear error, nothing written), and
a model trained on merged labels answering only merged labels through the CLI and the `openai`
client."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import write_classification_jsonl

CATEGORIES = ("dress", "shirt", "pants", "skirt")


def run(capsys, *argv):
    code = run_cli(*argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def dataset(tmp_path):
    """A dataset folder as `datasets build` leaves it: four categories, labels.json."""
    folder = tmp_path / "data"
    folder.mkdir()
    for split, n, seed in (("train", 80, 0), ("valid", 20, 1), ("test", 20, 2)):
        write_classification_jsonl(folder / f"{split}.jsonl", n, seed=seed, labels=CATEGORIES)
    (folder / "labels.json").write_text(json.dumps({"labels": sorted(CATEGORIES)}))
    return folder


def test_inspect_writes_report_png_and_merge_map(dataset, tmp_path, capsys):
    code, out, _ = run(capsys, "labels", "inspect", "-f", dataset / "train.jsonl", "-v", dataset / "valid.jsonl",
                       "--folds", "3", "--out", tmp_path / "report")
    assert code == 0
    assert "4 labels; rows: train 80, valid 20" in out and "Most confusable pairs" in out
    report = json.loads((tmp_path / "report" / "labels_report.json").read_text())
    assert report["counts"]["train"] == {c: 20 for c in sorted(CATEGORIES)} and report["imbalance_ratio"] == 1.0
    assert report["probabilities"] == "3-fold cross-validated TF-IDF + logistic regression"
    assert (tmp_path / "report" / "class_counts.png").read_bytes()[:4] == b"\x89PNG"


def test_issues_drop_writes_cleaned_file_and_record(dataset, tmp_path, capsys):
    rows = [json.loads(line) for line in (dataset / "train.jsonl").read_text().splitlines()]
    rows[3]["completion"] = " pants" if rows[3]["completion"] != " pants" else " dress"  # one planted flip
    noisy = tmp_path / "noisy.jsonl"
    noisy.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run(capsys, "labels", "issues", "-f", noisy, "--drop", "--limit", "1", "--out", tmp_path / "iss")
    assert code == 0 and "look mislabelled" in out
    issues = [json.loads(line) for line in (tmp_path / "iss" / "issues.jsonl").read_text().splitlines()]
    assert issues[0]["line"] == 4 and issues[0]["given"] == rows[3]["completion"]
    cleaned = (tmp_path / "iss" / "train.jsonl").read_text().splitlines()
    assert len(cleaned) == 79 and json.dumps(rows[3]) not in cleaned
    assert json.loads((tmp_path / "iss" / "changes.jsonl").read_text())["line"] == 4


def test_issues_leaves_a_one_row_class_unscored(tmp_path, capsys):
    rows = [{"prompt": f"{w} {i}\n\n###\n\n", "completion": f" {w}"} for i in range(12) for w in ("dress", "shirt")]
    rows.append({"prompt": "odd one\n\n###\n\n", "completion": " luggage"})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run(capsys, "labels", "issues", "-f", path, "--drop", "--out", tmp_path / "out")
    assert code == 0, err
    assert "Not scored: 1 class(es) with a single training row ('luggage')" in out
    assert json.dumps(rows[-1]) in (tmp_path / "out" / "train.jsonl").read_text().splitlines()  # kept
    code, out, _ = run(capsys, "labels", "issues", "-f", path, "--json", "--out", tmp_path / "out2")
    assert code == 0 and json.loads(out)["unscored"] == ["luggage"]


@pytest.mark.parametrize("completions, message", [
    ([" dress"] * 10, "single class"),
    ([" dress"] * 10 + [" shirt", " pants"], "single example"),
])
def test_issues_refuses_data_it_cannot_score(tmp_path, capsys, completions, message):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"row {i}\n\n###\n\n", "completion": c}) + "\n"
                            for i, c in enumerate(completions)))
    code, _, err = run(capsys, "labels", "issues", "-f", path, "--drop", "--out", tmp_path / "out")
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()


def test_merge_folder_and_bad_maps(dataset, tmp_path, capsys):
    code, out, _ = run(capsys, "labels", "merge", dataset, "--merge", "shirt+skirt=top", "--out", tmp_path / "m")
    assert code == 0 and "Merged 2 label(s): shirt -> top; skirt -> top" in out
    meta = json.loads((tmp_path / "m" / "labels.json").read_text())
    assert meta["labels"] == ["dress", "pants", "top"] and meta["merged"] == {"shirt": "top", "skirt": "top"}

    bad_map = tmp_path / "map.json"
    bad_map.write_text(json.dumps({"shoes": "top"}))
    code, _, err = run(capsys, "labels", "merge", dataset, "--merge-labels", bad_map, "--out", tmp_path / "x")
    assert code == 2 and "'shoes' is not one of the labels" in err and "'dress'" in err
    code, _, err = run(capsys, "labels", "merge", dataset, "--merge", "dress+shirt+pants+skirt=all",
                       "--out", tmp_path / "x")
    assert code == 2 and "single class" in err
    (dataset / "labels.json").write_text(json.dumps({"labels": ["dress", "pants", "shirt"]}))
    code, _, err = run(capsys, "labels", "merge", dataset, "--merge", "shirt=top", "--out", tmp_path / "x")
    assert code == 2 and "disagree with" in err and "train.jsonl:" in err
    assert not (tmp_path / "x").exists()


def test_build_refuses_unknown_label_in_merge(tmp_path, capsys):
    code, _, err = run(capsys, "datasets", "build", "clothing-reviews", "--preset", "clothing-class",
                       "--train-size", "200", "--merge", "Shirts=Tops", "--out", tmp_path / "d")
    assert code == 2 and "'Shirts' is not one of the labels" in err
    assert not (tmp_path / "d").exists()


def test_model_trained_on_merged_labels_answers_merged_labels(dataset, tmp_path, tiny_models, capsys, monkeypatch):
    import openai
    from fastapi.testclient import TestClient

    from tunelab.server import create_app
    from tunelab.store import Store
    from tunelab.training.config import ClassificationOptions
    from tunelab.training.planning import JobRequest, create_job
    from tunelab.training.runner import run_job

    assert run_cli("labels", "merge", dataset, "--merge", "shirt+skirt=top", "--out", tmp_path / "m") == 0
    store = Store()
    create_job(store, JobRequest(str(tmp_path / "m" / "train.jsonl"), str(tiny_models.encoder),
                                 str(tmp_path / "m" / "valid.jsonl"),
                                 {"n_epochs": 1, "learning_rate_multiplier": 50, "eval_every": 1000},
                                 ClassificationOptions(True, 3)))
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    model = job.fine_tuned_model
    merged = {" dress", " pants", " top"}
    assert set(store.find_model(model).labels) == merged
    capsys.readouterr()

    prompts = [json.loads(line)["prompt"] for line in (dataset / "test.jsonl").read_text().splitlines()][:6]
    for prompt in prompts[:3]:
        assert run_cli("complete", "-m", model, "--prompt", prompt, "--json") == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer["text"] in merged and answer["labels"] == sorted(merged)
        assert set(answer["probabilities"]) <= merged
    with TestClient(create_app(store, isolate_models=False)) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="sk", http_client=http, max_retries=0)
        res = client.completions.create(model=model, prompt=prompts, max_tokens=1, temperature=0, logprobs=5)
        assert {c.text for c in res.choices} <= merged
        assert all(set(c.logprobs.top_logprobs[0]) <= merged for c in res.choices)


def test_issues_and_inspect_with_a_models_probabilities(models, tmp_path, capsys):
    code, out, _ = run(capsys, "labels", "issues", "-f", models.cat_train, "-m", models.cat, "--json",
                       "--out", tmp_path / "iss")
    assert code == 0
    result = json.loads(out)
    assert result["probabilities"] == f"scores of {models.cat}" and result["n"] == 30
    assert (tmp_path / "iss" / "issues.jsonl").exists()
    code, out, _ = run(capsys, "labels", "inspect", "-f", models.cat_train, "-m", models.cat, "--out", tmp_path / "r")
    assert code == 0 and f"scores of {models.cat}" in out
    assert "cross-validated" not in out.split("Most confusable pairs")[1].splitlines()[0]


def test_each_suggested_merge_says_what_it_rests_on():
    from tunelab.cli.labels import _merge_reason

    report = {"rare_threshold": 20, "counts": {"train": {"home": 900, "kitchen": 400, "camera": 5}},
              "confusable_pairs": [{"a": "home", "b": "kitchen", "mutual": 0.29, "a_as_b": 0.2, "b_as_a": 0.4},
                                   {"a": "camera", "b": "home", "mutual": 0.002, "a_as_b": 0.4, "b_as_a": 0.0}]}
    assert _merge_reason(report, "kitchen", "home") == "29% of the pair's rows mixed up"
    assert _merge_reason(report, "camera", "home") == "2 of its 5 rows predicted as home"


def test_the_suggested_merge_command_names_the_inspected_files(tmp_path):
    import argparse

    from tunelab.cli.labels import _merge_source

    folder = tmp_path / "my data"
    folder.mkdir()
    (folder / "labels.json").write_text("{}")
    built = argparse.Namespace(file=str(folder / "train.jsonl"), valid=str(folder / "valid.jsonl"), test=None)
    assert _merge_source(built) == (f"'{folder}'", f"'{folder}-merged'")
    loose = argparse.Namespace(file="a/train.jsonl", valid=None, test="b/test.jsonl")
    assert _merge_source(loose) == ("-f a/train.jsonl -t b/test.jsonl", "merged")


def test_inspect_and_issues_show_progress_bars_to_a_person(dataset, tmp_path, capsys, monkeypatch):
    # Cross-validating 29k Amazon reviews took 45-80 s (minutes on 200k) with nothing on the screen.
    import tunelab.cli.labels as labels_cli

    monkeypatch.setattr(labels_cli, "interactive", lambda: True)
    code, _, err = run(capsys, "labels", "inspect", "-f", dataset / "train.jsonl", "--folds", "3",
                       "--out", tmp_path / "report")
    assert code == 0 and "Near duplicates" in err and "Cross-validating TF-IDF on 80 rows" in err and "3/3" in err
    code, _, err = run(capsys, "labels", "issues", "-f", dataset / "train.jsonl", "--out", tmp_path / "iss")
    assert code == 0 and "Cross-validating TF-IDF on 80 rows" in err and "5/5" in err
    monkeypatch.setattr(labels_cli, "interactive", lambda: False)  # a pipe or a CI log: no bar
    code, _, err = run(capsys, "labels", "issues", "-f", dataset / "train.jsonl", "--out", tmp_path / "iss")
    assert code == 0 and "Cross-validating" not in err


def test_inspect_names_a_class_with_no_training_row(dataset, tmp_path, capsys):
    # An Amazon category found only in the test file was listed as "too rare: software (0)".
    with open(dataset / "test.jsonl", "a") as fh:
        fh.write(json.dumps({"prompt": "license key windows\n\n###\n\n", "completion": " software"}) + "\n")
    code, out, _ = run(capsys, "labels", "inspect", "-f", dataset / "train.jsonl", "-t", dataset / "test.jsonl",
                       "--no-confusion", "--out", tmp_path / "report")
    assert code == 0
    assert "No training row, so no model trained on this file can answer it: software (1 test row(s))" in out
    assert "--merge 'OLD=NEW'" in out
