"""Small things a newcomer reads: the compare names on the command line, the verdict of evaluate,
prepare_data's next step for two files, and what `complete` says about the prompt it was given."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import write_classification_jsonl
from tunelab.cli.evaluate import named_models
from tunelab.errors import InvalidInputError
from tunelab.inference.completion import PROMPT_HEAD, format_completion


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_compare_names_on_the_command_line(models, home, capsys):
    out = home / "cmp"
    assert run_cli("compare", models.enc, models.child, "--names", "2 epochs", "3 epochs", "-f", models.test,
                   "--train", models.train, "--out", out, "--no-progress") == 0
    text = capsys.readouterr().out
    assert text.startswith("| metric | 2 epochs | 3 epochs | majority | tf-idf |")
    assert text.count("Verdict: ") == 2
    assert run_cli("compare", f"two={models.enc}", f"three={models.child}", "-f", models.test, "--out", out,
                   "--no-progress") == 0
    assert capsys.readouterr().out.startswith("| metric | two | three |")
    assert json.loads((out / "compare.json").read_text())["names"] == {models.enc: "two", models.child: "three"}
    assert run_cli("compare", models.enc, models.child, "--names", "only one", "-f", models.test) == 2
    assert "give one per model" in capsys.readouterr().err


def test_named_models_parsing(tmp_path):
    assert named_models(["a:ft-x", "b"], None) == (["a:ft-x", "b"], {})
    assert named_models(["1 epoch=a:ft-x", "b"], None) == (["a:ft-x", "b"], {"a:ft-x": "1 epoch"})
    assert named_models(["a", "b"], ["A", "B"]) == (["a", "b"], {"a": "A", "b": "B"})
    folder = tmp_path / "x=y"
    folder.mkdir()
    assert named_models([str(folder)], None) == ([str(folder)], {})  # a path with "=" stays a path
    with pytest.raises(InvalidInputError):
        named_models(["A=a"], ["B"])


def test_evaluate_says_the_verdict_in_words(models, home, capsys):
    assert run_cli("evaluate", "-m", models.enc, "-f", models.test, "--train", models.train, "--no-progress") == 0
    text = capsys.readouterr().out
    (line,) = [line for line in text.splitlines() if line.startswith("Verdict: ")]
    assert models.enc in line and "the majority class (always answering" in line and "TF-IDF" in line
    assert run_cli("evaluate", "-m", models.enc, "-f", models.test, "--no-progress") == 0
    assert "Verdict: " not in capsys.readouterr().out  # no baselines, no verdict


def test_prepare_data_names_both_files(tmp_path, capsys):
    data = write_classification_jsonl(tmp_path / "train.jsonl", 100)
    assert run_cli("tools", "fine_tunes.prepare_data", "-f", data, "-q") == 0
    text = capsys.readouterr().out
    assert "Now use these files when fine-tuning:" in text and "_prepared_valid.jsonl" in text


def test_complete_shows_dots_only_for_a_cut_prompt():
    result = {"prompt": "Great dress\n\n###\n\n", "classification": True, "labels": [" 1", " 5"], "prediction": "5",
              "text": " 5", "probabilities": [(" 5", 0.9), (" 1", 0.1)]}
    assert format_completion(result).splitlines()[1:4] == ["Great dress", "", "###"]
    assert " ..." not in format_completion(result)
    long = {**result, "prompt": "word " * 100 + "\n\n###\n\n"}
    assert format_completion(long).splitlines()[1].endswith(" ...")
    assert len(format_completion(long).splitlines()[1]) <= PROMPT_HEAD + 4


def test_complete_points_out_a_missing_separator(models, home, capsys):
    from tunelab.cli.complete import separator_note

    assert separator_note(models.enc, "great good\n\n###\n\n") is None
    note = separator_note(models.enc, "great good")
    assert note.startswith(f"Note: {models.enc} was trained on prompts that end with `\\n\\n###\\n\\n`")
    assert "$'" in separator_note(models.enc, "great good\\n\\n###\\n\\n")  # typed without $'...' in bash
    assert separator_note("minilm-l6", "anything") is None  # a base model: nothing to compare with
    assert run_cli("complete", "-m", models.enc, "--prompt", "great good") == 0
    captured = capsys.readouterr()
    assert "was trained on prompts that end with" in captured.err and "Predicted" in captured.out
