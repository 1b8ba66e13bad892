"""`tunelab api fine_tunes.*` as a user types it: Listing 4.2, follow, results, continuation, bad input."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import write_classification_jsonl


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-tiny")
    write_classification_jsonl(root / "train.jsonl", 80)
    write_classification_jsonl(root / "val.jsonl", 20, seed=1)
    return root


@pytest.mark.slow  # a worker process trains two models
def test_listing_4_2_then_results_and_continuation(tiny, tiny_models, capsys):
    code = run_cli("api", "fine_tunes.create", "-t", tiny / "train.jsonl", "-v", tiny / "val.jsonl",
                   "--compute_classification_metrics", "--classification_n_classes", "5", "-m", tiny_models.encoder,
                   "--n_epochs", "1", "--learning_rate_multiplier", "20")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Created fine-tune: ft-" in out and "Job complete! Status: succeeded" in out
    model_id = re.search(r"tunelab complete -m (\S+)", out).group(1)
    job_id = re.search(r"Created fine-tune: (ft-\w+)", out).group(1)

    assert run_cli("api", "fine_tunes.results", "-i", job_id) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and rows[-1]["classification/accuracy"] != "" and rows[-1]["classification/weighted_f1_score"] != ""

    assert run_cli("api", "fine_tunes.get", "-i", job_id) == 0
    view = json.loads(capsys.readouterr().out)
    for key in ("fine_tuned_model", "status", "result_files", "hyperparams", "training_files", "validation_files"):
        assert key in view
    assert view["fine_tuned_model"] == model_id and view["status"] == "succeeded"
    assert view["hyperparams"]["n_epochs"] == 1 and view["hyperparams"]["classification_n_classes"] == 5

    code = run_cli("api", "fine_tunes.create", "-t", tiny / "train.jsonl", "-v", tiny / "val.jsonl",
                   "--compute_classification_metrics", "--classification_n_classes", "5", "-m", model_id,
                   # all 3 epochs are registered; keeping the best epoch is tested in test_keep_best.py
                   "--n_epochs", "3", "--no_keep_best")
    out = capsys.readouterr().out
    assert code == 0, out
    child = re.search(r"tunelab complete -m (\S+)", out).group(1)
    assert run_cli("models", "get", child) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parent"] == model_id and info["cumulative_epochs"] == 4 and info["lineage"] == [model_id]

    assert run_cli("api", "fine_tunes.list") == 0
    listed = json.loads(capsys.readouterr().out)["data"]
    assert [j["fine_tuned_model"] for j in listed] == [model_id, child]


@pytest.mark.slow  # a worker process trains
def test_no_follow_returns_at_once_and_follow_reattaches(tiny, tiny_models, capsys):
    code = run_cli("api", "fine_tunes.create", "-t", tiny / "train.jsonl", "-m", tiny_models.encoder, "--no_follow")
    out, err = capsys.readouterr()
    assert code == 0 and "Job complete" not in out
    job = json.loads(out)  # the job as JSON, as the legacy CLI printed it
    assert job["object"] == "fine-tune" and job["status"] in ("pending", "running", "succeeded")
    job_id = re.search(r"Created fine-tune: (ft-\w+)", err).group(1)
    assert job_id == job["id"]
    assert run_cli("api", "fine_tunes.follow", "-i", job_id) == 0
    assert "Job complete! Status: succeeded" in capsys.readouterr().out


@pytest.mark.parametrize("argv,expected", [
    (["-m", "no-such-model"], ["Unknown model 'no-such-model'"]),
    (["-t", "missing.jsonl"], ["training file missing.jsonl does not exist"]),
    (["--compute_classification_metrics"], ["need a validation file"]),
    (["-v", "VAL", "--classification_n_classes", "3"], ["does not match the training data, which has 5"]),
    (["--n_epochs", "two", "--learning_rate_multiplier", "fast"],
     ["--n_epochs must be an integer, got 'two'", "--learning_rate_multiplier must be a number, got 'fast'"]),
    (["-m", "no-such-model", "--compute_classification_metrics", "-t", "missing.jsonl"],
     ["Unknown model", "need a validation file", "does not exist"]),
])
def test_bad_input_one_clear_message_each(tiny, tiny_models, capsys, argv, expected):
    base = {"-t": str(tiny / "train.jsonl"), "-m": str(tiny_models.encoder)}
    args = list(argv)
    for flag, value in base.items():
        if flag not in args:
            args = [flag, value] + args
    args = [str(tiny / "val.jsonl") if a == "VAL" else a for a in args]
    code = run_cli("api", "fine_tunes.create", *args)
    captured = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in captured.err + captured.out
    for text in expected:
        assert text in captured.err
    assert run_cli("api", "fine_tunes.list") == 0
    assert json.loads(capsys.readouterr().out)["data"] == []  # nothing was queued


def test_unknown_job_id(capsys):
    assert run_cli("api", "fine_tunes.get", "-i", "ft-doesnotexist0000") != 0
    assert "No such fine-tuning job" in capsys.readouterr().err


def test_models_list_shows_packaged_and_aliases(capsys):
    assert run_cli("models", "list") == 0
    out = capsys.readouterr().out
    for name in ("minilm-l6", "smollm2-135m", "ada", "davinci"):
        assert name in out
