"""PNG plots, including the training curves drawn from a job's results CSV."""

from __future__ import annotations

import pytest

from tunelab.errors import DataFileError, NotFoundError
from tunelab.evaluation import plots
from tunelab.evaluation.metrics import classification_report

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == PNG and path.stat().st_size > 1000


def test_training_curves_from_results_csv(tmp_path):
    csv_path = tmp_path / "results.csv"
    lines = ["step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,training_token_accuracy,"
             "validation_loss,validation_sequence_accuracy,validation_token_accuracy,classification/accuracy,"
             "classification/weighted_f1_score"]
    for step in range(1, 21):
        val = f"{1.5 - step * 0.04:.3f}" if step % 5 == 0 else ""
        acc = f"{0.2 + step * 0.03:.3f}" if step % 5 == 0 else ""
        lines.append(f"{step},{step * 100},{step * 8},{1.6 - step * 0.05:.3f},0.5,0.5,{val},,,{acc},{acc}")
    csv_path.write_text("\n".join(lines) + "\n")
    out = plots.plot_training_curves(csv_path, tmp_path / "curves" / "curves.png")
    assert out == tmp_path / "curves" / "curves.png"
    assert _is_png(out)


def test_training_curves_skip_missing_columns(tmp_path):
    csv_path = tmp_path / "results.csv"
    csv_path.write_text("step,training_loss\n1,2.0\n2,1.5\n3,\n")
    assert _is_png(plots.plot_training_curves(csv_path, tmp_path / "loss.png"))


def test_training_curves_errors(tmp_path):
    with pytest.raises(NotFoundError):
        plots.plot_training_curves(tmp_path / "missing.csv", tmp_path / "x.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("step,training_loss\n")
    with pytest.raises(DataFileError):
        plots.plot_training_curves(empty, tmp_path / "x.png")
    blank = tmp_path / "blank.csv"
    blank.write_text("step,training_loss\n1,\n")
    with pytest.raises(DataFileError):
        plots.plot_training_curves(blank, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_report_plots(tmp_path):
    labels = [" 1", " 2", " 3"]
    gold = [" 1", " 2", " 3", " 3", " 2"]
    pred = [" 1", " 3", " 3", " 3", " 2"]
    probs = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]]
    r = classification_report(gold, pred, probs, labels)
    assert _is_png(plots.plot_confusion_matrix(r["confusion_matrix"], labels, tmp_path / "cm.png"))
    assert _is_png(plots.plot_reliability(r["calibration"], tmp_path / "rel.png"))
    assert _is_png(plots.plot_per_class_f1(r["per_class"], tmp_path / "f1.png"))
    assert _is_png(plots.plot_grouped_bars(["accuracy", "ECE"], {"a": [0.5, None], "b": [0.7, 0.1]},
                                           tmp_path / "bars.png"))


def test_confusion_matrix_with_many_classes(tmp_path):
    labels = [f" class {i}" for i in range(31)]
    cm = [[(i == j) * 3 + (j == (i + 1) % 31) for j in range(31)] for i in range(31)]
    assert _is_png(plots.plot_confusion_matrix(cm, labels, tmp_path / "cm31.png"))
