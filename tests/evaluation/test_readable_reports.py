"""Reports that do not mislead a newcomer: reliability bins weighted by their rows, F1 = 0 shown as
a value, labels without ␣ in charts, named series in compare, training counts labelled as sums
over every epoch of the lineage, and a verdict in words against the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.tiny_models import TrainedModels
from tunelab.errors import InvalidInputError
from tunelab.evaluation import compare_models, plots
from tunelab.evaluation.compare import TRAINING_ROWS, display_names
from tunelab.evaluation.verdict import verdict

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return Path(path).read_bytes()[:8] == PNG


def skewed_calibration() -> dict:
    """200 rows: 198 in one bin, two bins of one row each (the case that used to fill the chart)."""
    bins = [{"lower": b / 15, "upper": (b + 1) / 15, "count": 0, "confidence": None, "accuracy": None}
            for b in range(15)]
    bins[7].update(count=1, confidence=0.49, accuracy=0.0)
    bins[8].update(count=198, confidence=0.58, accuracy=0.556)
    bins[9].update(count=1, confidence=0.61, accuracy=1.0)
    return {"bins": bins, "ece": 0.026}


def test_reliability_bins_fade_with_few_rows(tmp_path):
    solid = plots.faded_below(200)
    assert solid == 10 and plots.faded_below(1000) == 50
    assert plots.bin_alpha(1, solid) < 0.25 < plots.bin_alpha(5, solid) < plots.bin_alpha(solid, solid) == 1.0
    assert plots.bin_alpha(198, solid) == 1.0
    assert _is_png(plots.plot_reliability(skewed_calibration(), tmp_path / "reliability.png", title="Reliability\nm"))


def test_f1_of_zero_is_drawn_as_a_value(tmp_path):
    per_class = {f" {i}": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 5} for i in range(1, 5)}
    per_class[" 5"] = {"precision": 0.55, "recall": 1.0, "f1": 0.71, "support": 11}
    assert _is_png(plots.plot_per_class_f1(per_class, tmp_path / "f1.png", predicted=[0, 0, 0, 0, 31]))
    many = {f" class {i}": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1} for i in range(31)}
    assert _is_png(plots.plot_per_class_f1(many, tmp_path / "f1-many.png", predicted=[0] * 31))


def test_chart_labels_lose_the_leading_space():
    assert plots.plot_labels([" 1", " 2", " 5"]) == ["1", "2", "5"]
    assert plots.plot_labels([" positive", " negative"]) == ["positive", "negative"]
    assert plots.plot_labels(["4", " 4"]) == ["4", "␣4"]  # alike without the space: shown as it is


def test_training_curves_name_the_job(tmp_path):
    csv_path = tmp_path / "results.csv"
    rows = ["step,training_loss,validation_loss,classification/accuracy,classification/weighted_f1_score"]
    rows += [f"{s},{1.5 - s * 0.05},{1.4 - s * 0.04 if s % 3 == 0 else ''},"
             f"{0.4 + s * 0.01 if s % 3 == 0 else ''},{0.3 + s * 0.01 if s % 3 == 0 else ''}" for s in range(1, 20)]
    csv_path.write_text("\n".join(rows) + "\n")
    assert _is_png(plots.plot_training_curves(csv_path, tmp_path / "curves.png", title="Fine-tune ft-x: m"))
    assert plots.CURVE_NAMES["classification/weighted_f1_score"].startswith("validation weighted F1")


# -- verdict -----------------------------------------------------------------------------------------


def report(accuracy: float, ci=(None, None), majority=0.555, tfidf=0.555) -> dict:
    return {"accuracy": accuracy, "accuracy_ci95": list(ci),
            "baselines": {"majority": {"accuracy": majority, "label": " 5"}, "tfidf": {"accuracy": tfidf}}}


def test_verdict_says_plainly_when_the_model_is_no_better():
    said = verdict(report(0.555, (0.485, 0.62)), name="ada:ft-x")
    assert said == ("Verdict: ada:ft-x is no better than the majority class (always answering 5: 0.555 vs 0.555) "
                    "and no better than TF-IDF (0.555 vs 0.555) on accuracy.")


def test_verdict_beats_both_or_only_one():
    assert verdict(report(0.64, (0.58, 0.70))).startswith(
        "Verdict: The model beats the majority class (always answering 5: 0.640 vs 0.555) and TF-IDF")
    mixed = verdict(report(0.64, (0.58, 0.70), tfidf=0.60))
    assert "beats the majority class" in mixed and "but is not clearly better than TF-IDF (0.640 vs 0.600)" in mixed
    assert "within the model's 95% interval" in mixed
    assert verdict({"accuracy": 0.5, "baselines": None}) is None


def test_verdict_on_categories_also_gives_macro_f1():
    # 31 imbalanced Amazon categories: "no better than TF-IDF" on accuracy (0.706 vs 0.712) hid a
    # macro F1 of 0.547 against 0.493, the measure the category case study is about.
    categories = {**report(0.706, (0.687, 0.725), majority=0.082, tfidf=0.712), "ordinal": False,
                  "labels": [" home", " kitchen", " watch"], "macro_f1": 0.547}
    categories["baselines"]["tfidf"]["macro_f1"] = 0.493
    said = verdict(categories)
    assert "no better than TF-IDF (0.706 vs 0.712) on accuracy." in said
    assert said.endswith(" Macro F1, every class counted alike: 0.547, higher than TF-IDF's 0.493.")
    # star ratings (ordinal) keep the accuracy sentence alone
    stars = {**categories, "ordinal": True}
    assert "Macro F1" not in verdict(stars)


# -- compare ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory) -> TrainedModels:
    return tiny_models.install_trained(tmp_path_factory.mktemp("readable") / "home")


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_compare_uses_the_callers_names(models, tmp_path):
    names = {models.enc: "2 epochs", models.child: "2 + 1 epochs"}
    result = compare_models([models.enc, models.child], models.test, train_path=models.train, out_dir=tmp_path,
                            store=models.store, progress=False, names=names)
    md = (tmp_path / "compare.md").read_text()
    assert md.splitlines()[0] == "| metric | 2 epochs | 2 + 1 epochs | majority | tf-idf |"
    assert f"Columns: 2 epochs = {models.enc}; 2 + 1 epochs = {models.child}." in md
    assert md.count("Verdict: ") == 2 and f"Verdict: 2 epochs ({models.enc}) " in md
    assert result["names"] == names and result["columns"][:2] == [models.enc, models.child]  # ids stay the keys
    assert (tmp_path / "compare.csv").read_text().splitlines()[0].startswith(f"metric,{models.enc},{models.child}")
    assert json.loads((tmp_path / "compare.json").read_text())["names"] == names
    assert _is_png(tmp_path / "compare.png")


def test_training_counts_say_they_sum_every_epoch_of_the_lineage(models):
    titles = [title for title, _, _ in TRAINING_ROWS]
    assert "examples trained (all epochs of the lineage)" in titles and "tokens trained (all epochs of the lineage)" in titles
    from tunelab.evaluation.compare import training_summary

    child = training_summary(models.child, models.store)
    parent = training_summary(models.enc, models.store)
    assert child["trained_examples"] == parent["trained_examples"] + 60  # the 60-row file, one more epoch


def test_an_epoch_checkpoint_counts_its_job_only_up_to_that_epoch(models):
    """QA: `compare` of a job's epoch-1 checkpoint showed the whole 2-epoch job's examples, tokens and
    time next to "epochs 1"."""
    from tunelab.evaluation.compare import training_summary

    job = models.store.get_model(models.enc).job_id
    first = next(c for c in models.store.list_checkpoints(job) if c.epoch == 1)
    summary = training_summary(f"{models.enc}:ckpt-step-{first.step}", models.store)
    whole = training_summary(models.enc, models.store)
    assert summary["epochs"] == 1 and whole["epochs"] == 2
    assert summary["trained_examples"] == first.metrics["elapsed_examples"] == whole["trained_examples"] // 2
    assert summary["trained_tokens"] == first.metrics["elapsed_tokens"] < whole["trained_tokens"]
    assert 0 < summary["train_seconds"] < whole["train_seconds"] and summary["cpu_seconds"] < whole["cpu_seconds"]


def test_names_must_be_for_compared_models_and_distinct():
    assert display_names(["a", "b"], {"a": "first"}) == {"a": "first", "b": "b"}
    with pytest.raises(InvalidInputError, match="not compared"):
        display_names(["a"], {"z": "zed"})
    with pytest.raises(InvalidInputError, match="its own name"):
        display_names(["a", "b"], {"a": "same", "b": "same"})
    with pytest.raises(InvalidInputError, match="its own name"):
        display_names(["a"], {"a": "majority"})
