"""`tunelab complete`: the layout of the book's Listing 4.3, consistent with score_labels."""

from __future__ import annotations

import io
import math
import re

import pytest

from tests.conftest import run_cli

PROMPT = "great good love fits\n\n###\n\n"



def _probabilities(text: str) -> dict[str, float]:
    lines = text.split("Probabilities:\n", 1)[1].strip().splitlines()
    out = {}
    for line in lines:
        key, value = line.rsplit(": ", 1)
        out[key] = float(value)
    return out


@pytest.mark.parametrize("which", ["enc", "lm"])
def test_listing_4_3_layout_and_consistency_with_score_labels(models, home, capsys, which):
    from tunelab.inference.predictor import load_predictor

    model_id = getattr(models, which)
    assert run_cli("complete", "-m", model_id, "--prompt", PROMPT, "--max_tokens", "1", "--logprobs", "5",
                   "--temperature", "0") == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "Prompt:"
    assert text.startswith("Prompt:\n" + PROMPT[:200].rstrip() + "\n\n")  # not cut: no " ..."
    star = re.search(r"^Predicted Star: (\d)$", text, re.M)
    assert star, text
    probs = _probabilities(text)
    assert len(probs) == 5
    assert all(k.startswith("␣") for k in probs)  # " 4" is shown as ␣4
    values = list(probs.values())
    assert values == sorted(values, reverse=True)
    assert sum(values) <= 1.0 + 1e-3

    predictor = load_predictor(model_id, models.store)
    row = predictor.score_labels([PROMPT])[0]
    expected = {"␣" + label.strip(): math.exp(lp) for label, lp in zip(predictor.labels, row)}
    for key, value in probs.items():
        assert value == pytest.approx(expected[key], abs=6e-5)
    best = max(expected, key=expected.get)
    assert star.group(1) == best.lstrip("␣")
    assert next(iter(probs)) == best


def test_labels_prints_the_whole_distribution(models, home, capsys):
    assert run_cli("complete", "-m", models.cat, "--prompt", PROMPT, "--labels", "--logprobs", "1") == 0
    text = capsys.readouterr().out
    assert "Predicted label: " in text and "Predicted Star" not in text
    probs = _probabilities(text)
    assert set(probs) == {"␣dress", "␣pants", "␣shirt"}
    assert sum(probs.values()) == pytest.approx(1.0, abs=2e-4)


def test_logprobs_limits_the_list(models, home, capsys):
    assert run_cli("complete", "-m", models.enc, "--prompt", PROMPT, "--logprobs", "2") == 0
    assert len(_probabilities(capsys.readouterr().out)) == 2


def test_prompt_from_stdin_and_file(models, home, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(PROMPT))
    assert run_cli("complete", "-m", models.enc, "--prompt-file", "-") == 0
    from_stdin = capsys.readouterr().out
    path = home / "prompt.txt"
    path.write_text(PROMPT)
    assert run_cli("complete", "-m", models.enc, "--prompt-file", path) == 0
    assert capsys.readouterr().out == from_stdin
    monkeypatch.setattr("sys.stdin", io.StringIO(PROMPT))
    assert run_cli("complete", "-m", models.enc, "--prompt", "-") == 0
    assert capsys.readouterr().out == from_stdin


def test_long_prompts_show_their_first_200_characters(models, home, capsys):
    long_prompt = "great " * 100 + "\n\n###\n\n"
    assert run_cli("complete", "-m", models.enc, "--prompt", long_prompt) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[1] == long_prompt[:200].rstrip() + " ..."


def test_free_form_model_shows_the_first_token_top_k(models, home, capsys):
    assert run_cli("complete", "-m", models.decoder_dir, "--prompt", "great good", "--max_tokens", "2",
                   "--logprobs", "3") == 0
    text = capsys.readouterr().out
    assert "Completion: " in text
    lines = text.split("Probabilities (first token):\n", 1)[1].strip().splitlines()
    assert len(lines) == 3
    assert sum(float(l.rsplit(": ", 1)[1]) for l in lines) <= 1.0


def test_bad_inputs(models, home, capsys):
    assert run_cli("complete", "-m", "ada:ft-personal-2023-03-31-05-30-46", "--prompt", "x") == 3
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert run_cli("complete", "-m", models.decoder_dir, "--prompt", "x", "--labels") == 2
    assert "classification model" in capsys.readouterr().err
    assert run_cli("complete", "-m", models.enc, "--prompt", "") == 2
    assert "empty" in capsys.readouterr().err
    assert run_cli("complete", "-m", models.enc, "--prompt-file", home / "missing.txt") == 3
    assert f"The prompt file {home / 'missing.txt'} does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run_cli("complete", "-m", models.enc, "--prompt", "x", "--temperature", "-1")
    assert exc.value.code == 2
