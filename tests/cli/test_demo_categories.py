"""`tunelab demo --case categories` end to end on a tiny model: every step runs, one table with the
TF-IDF row, and the confusion matrices before and after merging."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # a worker process trains five tiny models


def test_categories_demo_on_a_tiny_model(tiny_models, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNELAB_WORKER_IDLE", "2")
    out = tmp_path / "demo"
    code = run_cli("demo", "--case", "categories", "--model", tiny_models.encoder, "--train-size", "400",
                   "--val-size", "100", "--test-size", "100", "--epochs", "1", "--max-length", "96", "--out", out)
    text = capsys.readouterr().out
    assert code == 0, text[-3000:]
    for step in ("== 1.", "== 2.", "== 3.", "== 4.", "== 5.", "== 7."):
        assert step in text
    table = (out / "table.md").read_text()
    assert table.startswith("| on the test split | accuracy | macro F1 | balanced acc. | rare-class recall | top-3 acc. |")
    assert "| TF-IDF + logistic regression (18 classes) |" in table and "post-hoc logit adjustment (tau" in table
    assert (out / "confusion_before_merge.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    if summary["suggested_merges"]:
        assert (out / "confusion_after_merge.png").exists() and "merged labels (" in table
    assert (out / "inspect" / "labels_report.json").exists()
    # "dropped N" is what left the training file (rows of rare classes stay), and a cleaned model is
    # trained only when something was dropped
    if (out / "issues" / "changes.jsonl").exists():
        changes = (out / "issues" / "changes.jsonl").read_text().splitlines()
        assert f"dropped {len(changes)}" in text
        assert ("cleaned labels" in table) == bool(changes)
