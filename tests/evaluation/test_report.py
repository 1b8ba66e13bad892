"""evaluate_model and compare_models on real tiny fine-tuned models.

The `tiny_models` factory trains them once per test session (tests/cli/test_evaluate.py and
test_complete.py use them too); this module works on its own copy of their store, passed
explicitly as `store=`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.tiny_models import TrainedModels
from tunelab.errors import DataFileError, InvalidInputError, NotFoundError
from tunelab.evaluation import compare_models, evaluate_model
from tunelab.evaluation.metrics import classification_report
from tunelab.evaluation.report import METRIC_KEYS, format_report


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory) -> TrainedModels:
    """The session's trained tiny models, in a copy of their store for this module."""
    return tiny_models.install_trained(tmp_path_factory.mktemp("eval") / "home")


@pytest.fixture(scope="module")
def lm_report(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm-report")
    return evaluate_model(models.lm, models.test, train_path=models.train, out_dir=out, store=models.store,
                          batch_size=7, progress=False)


def test_evaluate_writes_metrics_predictions_and_plots(lm_report):
    out = Path(lm_report["out_dir"])
    for name in ("metrics.json", "predictions.jsonl", "confusion_matrix.png", "reliability.png", "per_class_f1.png"):
        assert (out / name).is_file(), name
    for name in ("confusion_matrix.png", "reliability.png", "per_class_f1.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    data = json.loads((out / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(data)
    assert data["n"] == 30
    assert data["labels"] == [" 1", " 2", " 3", " 4", " 5"]
    assert data["ordinal"] is True and data["threshold"] == 3
    for key in ("accuracy", "good_vs_bad_accuracy", "one_off_accuracy", "mae", "macro_f1", "weighted_f1", "ece",
                "mean_logprob", "perplexity", "rows_per_second"):
        assert isinstance(data[key], float), key
    assert data["qwk"] is None or isinstance(data["qwk"], float)
    assert data["mean_logprob"] < 0 and data["perplexity"] > 1
    assert set(data["baselines"]) == {"majority", "tfidf"}
    for b in data["baselines"].values():
        for key in ("accuracy", "macro_f1", "good_vs_bad_accuracy", "one_off_accuracy"):
            assert isinstance(b[key], float)
    # the toy data is word-per-label, so TF-IDF gets it right
    assert data["baselines"]["tfidf"]["accuracy"] == 1.0


def test_a_rewrite_killed_midway_leaves_no_earlier_metrics_json(lm_report, tmp_path, monkeypatch):
    """metrics.json, written last, vouches for the report: a second run into the same folder that
    dies after predictions.jsonl must not leave the first run's metrics.json beside it."""
    import copy
    import shutil

    from tunelab.evaluation import plots
    from tunelab.evaluation.report import write_report

    out = tmp_path / "report"
    shutil.copytree(lm_report["out_dir"], out)
    assert (out / "metrics.json").exists()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for a kill while the plots are drawn

    monkeypatch.setattr(plots, "plot_confusion_matrix", killed)
    with pytest.raises(KeyboardInterrupt):
        write_report(copy.deepcopy(lm_report), [{"prompt": "p", "completion": " 1"}], out)
    assert not (out / "metrics.json").exists() and (out / "predictions.jsonl").read_text().count("\n") == 1


def test_metrics_agree_with_the_predictions_file(lm_report):
    rows = [json.loads(l) for l in (Path(lm_report["out_dir"]) / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 30
    labels = lm_report["labels"]
    probs = np.array([[r["probs"][l] for l in labels] for r in rows])
    for r in rows:
        assert r["pred"] == max(r["probs"], key=r["probs"].get)
        assert r["prompt"].endswith("\n\n###\n\n")
    again = classification_report([r["gold"] for r in rows], [r["pred"] for r in rows], probs, labels)
    for key in ("accuracy", "macro_f1", "good_vs_bad_accuracy", "one_off_accuracy", "mae", "confusion_matrix"):
        expected = pytest.approx(lm_report[key]) if isinstance(again[key], float) else lm_report[key]
        assert again[key] == expected, key
    assert again["ece"] == pytest.approx(lm_report["ece"], abs=1e-4)  # file probabilities are rounded


def test_scores_match_score_labels(models, lm_report):
    from tunelab.data.readers import read_prompt_completion
    from tunelab.inference.predictor import load_predictor

    predictor = load_predictor(models.lm, models.store)
    examples = read_prompt_completion(models.test)
    logp = predictor.score_labels([e.prompt for e in examples], batch_size=7)  # as lm_report
    gold_idx = [predictor.labels.index(e.completion) for e in examples]
    assert lm_report["mean_logprob"] == pytest.approx(float(np.mean(logp[np.arange(30), gold_idx])), abs=1e-5)
    tokens = sum(predictor.count_tokens(e.completion) for e in examples)
    assert lm_report["perplexity"] == pytest.approx(float(np.exp(-logp[np.arange(30), gold_idx].sum() / tokens)),
                                                    rel=1e-5)


def test_format_report_lists_every_metric(lm_report):
    text = format_report(lm_report)
    for needle in ("accuracy", "95% CI", "good-vs-bad", "one-off", "MAE", "QWK", "macro F1", "weighted F1", "ECE",
                   "perplexity", "rows/s", "majority", "tf-idf", "Per class", "Confusion matrix", "␣4"):
        assert needle in text, needle


def test_evaluate_without_out_dir_writes_nothing(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # label names of several tokens ("home_improvement"): a classifier still answers each in one step
    monkeypatch.setattr("tunelab.inference.predictor.Predictor.count_tokens", lambda self, text: 3)
    report = evaluate_model(models.enc, models.test, store=models.store, progress=False)
    assert report["out_dir"] is None and report["files"] == {}
    assert report["baselines"] is None
    assert report["method"] == "classifier"
    assert list(tmp_path.iterdir()) == []
    # a classifier's label is one answer, whatever its name tokenizes to
    assert report["perplexity"] == pytest.approx(math.exp(-report["mean_logprob"]), rel=1e-6)


def test_evaluate_accepts_a_file_id_and_labels_without_spaces(models, tmp_path):
    rows = [json.loads(l) for l in models.test.read_text().splitlines()]
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({"prompt": r["prompt"], "completion": r["completion"].strip()}) + "\n"
                             for r in rows))
    record = models.store.add_file(plain, n_rows=len(rows))
    by_id = evaluate_model(models.enc, record.id, store=models.store, progress=False)
    by_path = evaluate_model(models.enc, models.test, store=models.store, progress=False)
    assert by_id["n"] == 30
    assert by_id["accuracy"] == by_path["accuracy"]
    assert by_id["confusion_matrix"] == by_path["confusion_matrix"]


def test_categorical_model(models, tmp_path):
    report = evaluate_model(models.cat, models.cat_test, train_path=models.cat_train, out_dir=tmp_path,
                            store=models.store, progress=False)
    assert report["labels"] == [" dress", " pants", " shirt"]
    assert report["ordinal"] is False
    assert report["good_vs_bad_accuracy"] is None and report["mae"] is None
    assert "good_vs_bad_accuracy" not in report["baselines"]["tfidf"]
    assert (tmp_path / "confusion_matrix.png").exists()


def test_unseen_labels_are_named(models, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "great\n\n###\n\n", "completion": " 4"}) + "\n"
                   + json.dumps({"prompt": "bad\n\n###\n\n", "completion": " 7"}) + "\n"
                   + json.dumps({"prompt": "bad\n\n###\n\n", "completion": " meh"}) + "\n")
    with pytest.raises(InvalidInputError) as err:
        evaluate_model(models.enc, bad, store=models.store, progress=False)
    text = err.value.render()
    assert "' 7'" in text and "' meh'" in text and "never saw" in text
    assert "' 1', ' 2', ' 3', ' 4', ' 5'" in text  # the model's labels


def test_unseen_labels_in_the_training_file(models, tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "completion": " 9"}) + "\n")
    with pytest.raises(InvalidInputError, match="' 9'") as err:
        evaluate_model(models.enc, models.test, train_path=bad, store=models.store, progress=False)
    assert "test file made" not in err.value.render()  # the hint fits the training file too
    assert "tunelab labels merge" in err.value.render()


def test_an_out_path_that_is_a_file_is_refused_before_scoring(models, tmp_path, monkeypatch):
    (tmp_path / "report").write_text("x")
    monkeypatch.setattr("tunelab.evaluation.report.load_examples", lambda *a, **k: pytest.fail("read the test file"))
    with pytest.raises(InvalidInputError, match="is a file, not a directory"):
        evaluate_model(models.enc, models.test, out_dir=tmp_path / "report", store=models.store, progress=False)


def test_empty_and_missing_test_files(models, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataFileError, match="empty"):
        evaluate_model(models.enc, empty, store=models.store, progress=False)
    with pytest.raises(NotFoundError, match="does not exist"):
        evaluate_model(models.enc, tmp_path / "nope.jsonl", store=models.store, progress=False)
    with pytest.raises(NotFoundError):
        evaluate_model(models.enc, "file-0123456789abcdef01234567", store=models.store, progress=False)


def test_unknown_model(models):
    with pytest.raises(NotFoundError, match="ada:ft-personal-2023-03-31-05-30-46"):
        evaluate_model("ada:ft-personal-2023-03-31-05-30-46", models.test, store=models.store, progress=False)
    with pytest.raises(NotFoundError):
        evaluate_model("no-such-model", models.test, store=models.store, progress=False)


def test_base_causal_model_scores_the_labels_of_the_data(models):
    report = evaluate_model(str(models.decoder_dir), models.test, store=models.store, progress=False)
    assert report["labels_from"] == "data"
    assert report["labels"] == [" 1", " 2", " 3", " 4", " 5"]
    assert 0 <= report["accuracy"] <= 1


# -- compare ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def comparison(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    return compare_models([models.enc, models.lm, models.child], models.test, train_path=models.train, out_dir=out,
                          store=models.store, progress=False)


def test_compare_writes_markdown_csv_and_chart(comparison, models):
    out = Path(comparison["out_dir"])
    md = (out / "compare.md").read_text()
    csv_text = (out / "compare.csv").read_text()
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    rows = ["accuracy", "good-vs-bad accuracy", "one-off accuracy", "macro F1", "MAE", "ECE", "epochs",
            "examples trained (all epochs of the lineage)", "tokens trained (all epochs of the lineage)",
            "training wall time (lineage)", "compute (lineage)",
            "ada-equivalent price (reference)"]
    for row in rows:
        assert f"| {row} |" in md, row
        assert any(line.startswith(row) for line in csv_text.splitlines()), row
    header = md.splitlines()[0]
    for column in (models.enc, models.lm, models.child, "majority", "tf-idf"):
        assert column in header
        assert column in csv_text.splitlines()[0]
    assert "$0.0004 per 1K tokens" in md
    # each model's own evaluate report sits in a subfolder
    assert len(list(out.glob("*/metrics.json"))) == 3


def test_compare_reuses_evaluate_numbers(comparison, models, lm_report):
    row = {r["key"]: r for r in comparison["rows"]}
    assert row["accuracy"]["values"][models.lm] == lm_report["accuracy"]
    assert row["macro_f1"]["values"]["majority"] == lm_report["baselines"]["majority"]["macro_f1"]
    assert row["accuracy"]["values"]["tf-idf"] == lm_report["baselines"]["tfidf"]["accuracy"]


def test_compare_sums_training_over_the_lineage(comparison, models):
    t = comparison["training"]
    parent = models.store.get_job(models.store.get_model(models.enc).job_id)
    child = models.store.get_job(models.store.get_model(models.child).job_id)
    assert t[models.enc]["epochs"] == 2 and t[models.child]["epochs"] == 3
    assert t[models.child]["lineage"] == [models.child, models.enc]
    assert t[models.enc]["trained_examples"] == parent.trained_examples == 120
    assert t[models.child]["trained_examples"] == parent.trained_examples + child.trained_examples == 180
    assert t[models.child]["trained_tokens"] == parent.trained_tokens + child.trained_tokens
    assert t[models.child]["train_seconds"] == pytest.approx(parent.train_seconds + child.train_seconds)
    assert t[models.enc]["ada_equivalent_usd"] == pytest.approx(parent.trained_tokens / 1000 * 0.0004)
    assert "CPU-s" in t[models.enc]["compute"] or "GPU-s" in t[models.enc]["compute"]


def test_compare_with_given_reports_does_not_score_again(models, lm_report, monkeypatch):
    import tunelab.evaluation.compare as compare_mod

    def boom(*a, **k):
        raise AssertionError("scored twice")

    monkeypatch.setattr(compare_mod, "evaluate_model", boom)
    result = compare_models([models.lm], models.test, store=models.store, reports={models.lm: lm_report})
    assert result["columns"] == [models.lm]
    assert result["out_dir"] is None


def test_compare_errors(models):
    with pytest.raises(InvalidInputError, match="more than once"):
        compare_models([models.enc, models.enc], models.test, store=models.store, progress=False)
    with pytest.raises(NotFoundError):
        compare_models([models.enc, "ada:ft-personal-2023-03-31-05-30-46"], models.test, store=models.store,
                       progress=False)
