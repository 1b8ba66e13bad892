"""The legacy CLI with chat-format data (issue 14): prepare_data → fine_tunes.create (legacy ids,
`--suffix` normalised) → evaluate / complete / continue / delete, with fine-tuned ids of both forms."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import write_chat_jsonl
from tunelab.data.chat import transcript
from tunelab.store import Store
from tunelab.training.runner import run_job


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)


def train_queued(store: Store) -> str:
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    return job.fine_tuned_model


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_chat_stars_through_the_legacy_cli(tiny_models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_chat_jsonl(tmp_path / "stars.jsonl", 50)
    test = write_chat_jsonl(tmp_path / "test.jsonl", 10, seed=2)
    assert run_cli("tools", "fine_tunes.prepare_data", "-f", data, "-q") == 0
    out = capsys.readouterr().out
    assert "The last assistant replies form 5 labels" in out
    train, valid = tmp_path / "stars_prepared_train.jsonl", tmp_path / "stars_prepared_valid.jsonl"
    assert "--compute_classification_metrics --classification_n_classes 5" in out

    assert run_cli("api", "fine_tunes.create", "-t", train, "-v", valid, "-m", tiny_models.encoder,
                   "--n_epochs", "1", "--suffix", "Stars As Chat (v1)", "--compute_classification_metrics",
                   "--no_follow") == 0
    store = Store()
    model = train_queued(store)
    # the legacy endpoint keeps the legacy id; the suffix is normalised, not refused
    assert re.fullmatch(r"enc:ft-personal:stars-as-chat-v1-\d{4}(-\d{2}){5}", model), model
    capsys.readouterr()

    assert run_cli("evaluate", "-m", model, "-f", test, "--out", tmp_path / "report", "--no-progress") == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    capsys.readouterr()
    assert metrics["labels"] == ["1", "2", "3", "4", "5"] and metrics["n"] == 10

    prompt = transcript(json.loads(test.read_text().splitlines()[0])["messages"][:-1])
    assert run_cli("complete", "-m", model, "--prompt", prompt, "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["text"] in metrics["labels"] and set(answer["probabilities"]) == set(metrics["labels"])

    # continuing a chat model with more chat data (-m takes the fine-tuned id)
    assert run_cli("api", "fine_tunes.create", "-t", train, "-m", model, "--n_epochs", "1", "--no_follow") == 0
    child = train_queued(store)
    assert child.startswith("enc:ft-personal-") and store.find_model(child).parent_id == model
    assert store.find_model(child).meta["chat_format"] == "transcript"


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_current_style_ids_work_in_the_cli(tiny_models, tmp_path, capsys):
    import shutil

    from tunelab.store.ids import CURRENT

    store = Store()
    folder = tmp_path / "build"
    shutil.copytree(tiny_models.finetuned()["classifier"], folder)
    meta = json.loads((folder / "tunelab.json").read_text())
    model = store.register_model(base_id="gpt-4o-mini-2024-07-18", built_dir=folder, base_model=meta["base_model"],
                                 method="classifier", labels=meta["labels"], cumulative_epochs=1, meta=meta,
                                 id_style=CURRENT).id
    assert model.startswith("ft:gpt-4o-mini-2024-07-18:personal::")
    assert run_cli("complete", "-m", model, "--prompt", "great good", "--json") == 0
    capsys.readouterr()
    assert run_cli("models", "get", model) == 0
    assert json.loads(capsys.readouterr().out)["id"] == model
    assert run_cli("api", "fine_tunes.create", "-t", tiny_models.train, "-m", model, "--n_epochs", "1",
                   "--no_follow") == 0
    child = train_queued(store)
    # continued through the legacy CLI: a legacy id, under the base named in the parent's id
    assert child.startswith("gpt-4o-mini-2024-07-18:ft-personal-"), child
    assert run_cli("models", "delete", child) == 0
