"""`tunelab complete` and `tunelab evaluate` wiring on fake models (tests/helpers/fake_predictor.py):
the numbers printed are exactly the predictor's, whatever the weights. test_complete.py and
test_evaluate.py run the same commands on real tiny fine-tuned models."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import CATEGORIES, LABELS, write_classification_jsonl
from tunelab.store import Store

PROMPT = "great good love fits\n\n###\n\n"


@pytest.fixture
def fakes(fake_predictors, tunelab_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store()
    ids = {"stars": fake_predictors.register(store, "classifier", labels=LABELS, name="ada", suffix="stars"),
           "cat": fake_predictors.register(store, "lm", labels=[" " + c for c in sorted(CATEGORIES)], name="ada",
                                           suffix="cat"),
           "gen": fake_predictors.register(store, "lm", name="curie", suffix="gen")}
    return {k: (v, fake_predictors.get(v)) for k, v in ids.items()}


def printed_probabilities(text: str) -> dict[str, float]:
    lines = text.split("Probabilities", 1)[1].split(":\n", 1)[1].strip().splitlines()
    return {key: float(value) for key, value in (line.rsplit(": ", 1) for line in lines)}


def test_complete_prints_the_predictors_label_distribution(fakes, capsys):
    model_id, fake = fakes["stars"]
    assert run_cli("complete", "-m", model_id, "--prompt", PROMPT, "--logprobs", "3") == 0
    text = capsys.readouterr().out
    expected = {"␣" + l.strip(): math.exp(v) for l, v in zip(LABELS, fake.expected_scores(PROMPT))}
    best = max(expected, key=expected.get)
    assert text.startswith("Prompt:\n" + PROMPT.rstrip() + "\n\nPredicted Star: " + best.lstrip("␣") + "\n")
    probs = printed_probabilities(text)
    assert list(probs) == sorted(expected, key=expected.get, reverse=True)[:3]
    for key, value in probs.items():
        assert value == pytest.approx(expected[key], abs=5e-5)
    assert fake.calls == [("complete", 1)]


def test_complete_json_and_all_labels(fakes, capsys):
    model_id, fake = fakes["cat"]
    assert run_cli("complete", "-m", model_id, "--prompt", PROMPT, "--labels", "--logprobs", "1", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == model_id and data["classification"] is True
    labels = [" " + c for c in sorted(CATEGORIES)]
    expected = {l: math.exp(v) for l, v in zip(labels, fake.expected_scores(PROMPT))}
    assert data["probabilities"] == pytest.approx(expected)
    assert data["text"] == max(expected, key=expected.get) and data["prediction"] == data["text"].strip()
    assert run_cli("complete", "-m", model_id, "--prompt", PROMPT, "--labels") == 0
    assert "Predicted label: " in capsys.readouterr().out  # not star ratings


def test_complete_free_form(fakes, capsys):
    model_id, fake = fakes["gen"]
    assert run_cli("complete", "-m", model_id, "--prompt", "great good", "--max_tokens", "3", "--logprobs", "2") == 0
    text = capsys.readouterr().out
    assert f"Completion: {fake.expected_text('great good', 3)!r}" in text
    assert len(printed_probabilities(text)) == 2
    assert run_cli("complete", "-m", model_id, "--prompt", "x", "--labels") == 2
    assert "classification model" in capsys.readouterr().err


def test_evaluate_scores_with_the_predictor(fakes, tmp_path, capsys):
    model_id, fake = fakes["stars"]
    test = write_classification_jsonl(tmp_path / "test.jsonl", 25, seed=4)
    rows = [json.loads(line) for line in test.read_text().splitlines()]
    assert run_cli("evaluate", "-m", model_id, "-f", test, "--json", "--no-progress", "--out", tmp_path / "r") == 0
    data = json.loads(capsys.readouterr().out)
    predicted = [LABELS[max(range(5), key=lambda i: fake.expected_scores(r["prompt"])[i])] for r in rows]
    accuracy = sum(p == r["completion"] for p, r in zip(predicted, rows)) / len(rows)
    assert data["n"] == 25 and data["labels"] == LABELS and data["model"] == model_id
    assert data["accuracy"] == pytest.approx(accuracy)
    gold_logp = [fake.expected_scores(r["prompt"])[LABELS.index(r["completion"])] for r in rows]
    assert data["mean_logprob"] == pytest.approx(sum(gold_logp) / len(rows), abs=1e-6)
    written = [json.loads(line) for line in (tmp_path / "r" / "predictions.jsonl").read_text().splitlines()]
    assert [w["pred"] for w in written] == predicted
    assert fake.calls == [("score_labels", 25)]  # one call for the whole file


def test_unknown_model_is_exit_3(fakes, capsys):
    assert run_cli("complete", "-m", "ada:ft-personal-2023-03-31-05-30-46", "--prompt", "x") == 3
    assert "does not exist" in capsys.readouterr().err
