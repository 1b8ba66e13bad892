"""`tunelab evaluate` and `tunelab compare` end to end on tiny fine-tuned models."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli



def test_evaluate_prints_all_metrics_and_writes_the_report(models, home, capsys):
    out = home / "report"
    assert run_cli("evaluate", "-m", models.enc, "-f", models.test, "--train", models.train, "--out", out,
                   "--batch-size", "8") == 0
    captured = capsys.readouterr()
    text = captured.out
    for needle in ("accuracy", "95% CI", "good-vs-bad (<= 3 | > 3)", "one-off", "MAE", "QWK", "macro F1",
                   "weighted F1", "ECE", "mean log-prob", "perplexity", "throughput", "majority", "tf-idf",
                   "Per class", "Confusion matrix", f"Wrote the report to {out}"):
        assert needle in text, needle
    assert "Scoring" not in captured.err and "\r" not in captured.err  # no bar without a terminal
    data = json.loads((out / "metrics.json").read_text())
    for key in ("model", "accuracy", "accuracy_ci95", "good_vs_bad_accuracy", "one_off_accuracy", "mae", "qwk",
                "macro_f1", "weighted_f1", "ece", "per_class", "confusion_matrix", "labels", "n", "mean_logprob",
                "perplexity", "rows_per_second", "baselines"):
        assert key in data, key
    assert data["model"] == models.enc
    assert set(data["baselines"]) == {"majority", "tfidf"}
    for name in ("predictions.jsonl", "confusion_matrix.png", "reliability.png", "per_class_f1.png"):
        assert (out / name).is_file()


def test_evaluate_default_out_dir_and_threshold(models, home, capsys):
    assert run_cli("evaluate", "-m", models.lm, "-f", models.test, "--threshold", "2", "--no-progress") == 0
    text = capsys.readouterr().out
    folder = home / "tunelab-report" / models.lm.replace(":", "_")
    assert (folder / "metrics.json").is_file()
    assert f"Wrote the report to {folder}" in text
    assert "good-vs-bad (<= 2 | > 2)" in text
    assert json.loads((folder / "metrics.json").read_text())["threshold"] == 2


def test_evaluate_json(models, home, capsys):
    assert run_cli("evaluate", "-m", models.cat, "-f", models.cat_test, "--json", "--no-progress",
                   "--out", home / "r") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ordinal"] is False and data["good_vs_bad_accuracy"] is None
    assert data["labels"] == [" dress", " pants", " shirt"]


def test_evaluate_bad_inputs(models, home, capsys):
    empty = home / "empty.jsonl"
    empty.write_text("")
    assert run_cli("evaluate", "-m", models.enc, "-f", empty, "--no-progress") == 2
    assert "is empty" in capsys.readouterr().err

    unseen = home / "unseen.jsonl"
    unseen.write_text(json.dumps({"prompt": "great\n\n###\n\n", "completion": " 6"}) + "\n")
    assert run_cli("evaluate", "-m", models.enc, "-f", unseen, "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "' 6'" in err and "' 5'" in err and "Traceback" not in err

    assert run_cli("evaluate", "-m", "ada:ft-personal-2023-03-31-05-30-46", "-f", models.test, "--no-progress") == 3
    assert "No such fine-tuned model" in capsys.readouterr().err

    assert run_cli("evaluate", "-m", models.enc, "-f", home / "missing.jsonl", "--no-progress") == 3
    assert "does not exist" in capsys.readouterr().err
    assert not (home / "tunelab-report").exists()


def test_evaluate_batch_size_must_be_positive(models, home, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("evaluate", "-m", models.enc, "-f", models.test, "--batch-size", "0")
    assert exc.value.code == 2


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_compare_three_models(models, home, capsys):
    out = home / "cmp"
    assert run_cli("compare", models.enc, models.lm, models.child, "-f", models.test, "--train", models.train,
                   "--out", out, "--no-progress") == 0
    text = capsys.readouterr().out
    assert text.startswith("| metric | " + " | ".join([models.enc, models.lm, models.child, "majority", "tf-idf"]))
    for row in ("accuracy", "good-vs-bad accuracy", "one-off accuracy", "macro F1", "MAE", "ECE", "epochs",
                "examples trained (all epochs of the lineage)", "tokens trained (all epochs of the lineage)",
                "training wall time (lineage)", "compute (lineage)",
                "ada-equivalent price (reference)"):
        assert f"| {row} |" in text
    for name in ("compare.md", "compare.csv", "compare.png", "compare.json"):
        assert (out / name).is_file()
    assert f"to {out}" in text


def test_compare_default_out_dir_and_errors(models, home, capsys):
    assert run_cli("compare", models.enc, "-f", models.test, "--no-progress") == 0
    assert (home / "tunelab-report" / "compare" / "compare.md").is_file()
    capsys.readouterr()
    assert run_cli("compare", models.enc, "nope:ft-personal-2023-03-31-05-30-46", "-f", models.test) == 3
    assert "No such fine-tuned model" in capsys.readouterr().err


def test_a_model_folder_is_evaluated_like_its_id(models, home, capsys):
    """A job's checkpoints/epoch-N folder, or a copied model, can be scored by its path; the
    server never opens paths (load_predictor without folders=True names the fix)."""
    from tunelab.errors import InvalidInputError
    from tunelab.inference.predictor import load_predictor

    folder = str(models.store.get_model(models.enc).path)
    reports = []
    for model in (models.enc, folder):
        assert run_cli("evaluate", "-m", model, "-f", models.test, "--json", "--no-progress",
                       "--out", home / "r" / str(len(reports))) == 0
        reports.append(json.loads(capsys.readouterr().out))
    by_id, by_folder = reports
    assert by_folder["model"] == folder
    for key in ("accuracy", "macro_f1", "ece", "ece_uncalibrated", "mae", "labels"):
        assert by_folder[key] == by_id[key], key

    assert run_cli("compare", models.enc, f"the folder={folder}", "-f", models.test, "--no-progress",
                   "--out", home / "cmp") == 0
    assert "the folder" in capsys.readouterr().out

    outputs = []
    for model in (models.enc, folder):
        assert run_cli("complete", "-m", model, "--prompt", "great fabric\n\n###\n\n", "--labels") == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]

    # Both kinds: a causal (lm-method) folder would otherwise load as a plain base model.
    for path in (folder, str(models.store.get_model(models.lm).path)):
        with pytest.raises(InvalidInputError) as err:
            load_predictor(path)
        assert "tunelab model folder" in str(err.value) and "ckpt-step" in err.value.render()


def test_checkpoints_lists_each_epoch_by_the_name_evaluate_takes(models, home, capsys):
    from pathlib import Path

    from tunelab.training.plan import JobStats

    job_id = models.store.get_model(models.enc).job_id
    assert run_cli("api", "fine_tunes.checkpoints", "-i", job_id) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert [c["epoch"] for c in data] == [2, 1]  # newest first, as the API lists them
    assert all(c["object"] == "fine_tuning.job.checkpoint" and c["available"] for c in data)

    assert run_cli("api", "fine_tunes.checkpoints", "-i", job_id, "--table") == 0
    table = capsys.readouterr().out.splitlines()
    kept = JobStats.from_job(models.store.get_job(job_id)).kept_epoch
    rows = {int(line.split()[0]): line for line in table[1:]}
    assert set(rows) == {1, 2} and "kept" in rows[kept] and "kept" not in rows[3 - kept]
    for c in data:
        assert c["fine_tuned_model_checkpoint"] in rows[c["epoch"]]
        assert f"{c['all_metrics']['selection_accuracy']:.4f}" in rows[c["epoch"]]

    # A continuation that kept its starting point: the note names the parent, not only the new id
    # (it read "the parent's weights, <the child's id>", as if the child were the parent).
    child_job = models.store.get_model(models.child).job_id
    job = models.store.get_job(child_job)
    models.store.update_job(child_job, options={**(job.options or {}), "kept_epoch": 0})
    assert run_cli("api", "fine_tunes.checkpoints", "-i", child_job, "--table") == 0
    note = capsys.readouterr().out.splitlines()[-1]
    assert note.startswith("The job kept its starting point") and note.endswith(f"its parent, {models.enc}.")
    assert models.child in note and job.model == models.enc

    name = next(c["fine_tuned_model_checkpoint"] for c in data if c["epoch"] == 1)
    assert run_cli("evaluate", "-m", name, "-f", models.test, "--json", "--no-progress", "--out", home / "ck") == 0
    assert json.loads(capsys.readouterr().out)["model"] == name

    epoch_1 = next(c for c in models.store.list_checkpoints(job_id) if c.epoch == 1)
    (Path(epoch_1.path) / "tunelab.json").unlink()
    assert run_cli("api", "fine_tunes.checkpoints", "-i", job_id, "--table") == 0
    assert "(folder pruned)" in capsys.readouterr().out
