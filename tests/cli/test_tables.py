"""Short views: `fine_tunes.list --table`, `fine_tunes.get --table` and `models list` fit in 100
columns, while the JSON that legacy scripts parse stays the default of the `api` verbs."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import run_cli
from tunelab.cli.common import TABLE_WIDTH, clip, clip_middle, format_columns


def out(capsys) -> str:
    return capsys.readouterr().out


def assert_fits(text: str) -> list[str]:
    lines = text.rstrip("\n").splitlines()
    too_wide = [line for line in lines if len(line) > TABLE_WIDTH]
    assert too_wide == []
    return lines


def test_finished_jobs_and_models_as_tables(models, capsys):
    """The trained tiny models' store: four real jobs, with their events, and four models."""
    assert run_cli("api", "fine_tunes.list") == 0
    listed = json.loads(out(capsys))["data"]  # JSON by default, as before
    assert len(listed) == 4 and all(j["object"] == "fine-tune" for j in listed)

    assert run_cli("api", "fine_tunes.list", "--table") == 0
    lines = assert_fits(out(capsys))
    assert lines[0].split()[:3] == ["ID", "STATUS", "CREATED"] and len(lines) == 1 + len(listed)
    for job, line in zip(listed, lines[1:]):
        assert line.startswith(job["id"]) and "succeeded" in line
        assert job["fine_tuned_model"] in line or "…" in line

    for job in listed:
        assert run_cli("api", "fine_tunes.get", "-i", job["id"]) == 0
        full = out(capsys)
        assert json.loads(full)["id"] == job["id"]
        assert run_cli("api", "fine_tunes.get", "-i", job["id"], "--table") == 0
        lines = assert_fits(out(capsys))
        assert len(lines) < 30 < len(full.splitlines())
        text = "\n".join(lines)
        assert lines[0].startswith(f"Fine-tune {job['id']}")
        for field in ("status", "model", "fine-tuned model", "hyperparameters", "training file", "events"):
            assert re.search(rf"^  {field} ", text, re.M), field
        assert "n_epochs" in text and job["fine_tuned_model"] in text
        # QA: the events read as fine_tunes.create/follow/events write them, not in the current wording
        assert "Fine-tune succeeded" in text and "Job succeeded." not in text
        assert "New fine-tuned model created" not in text

    assert run_cli("models", "list") == 0
    default = out(capsys)
    assert run_cli("models", "list", "--table") == 0
    assert out(capsys) == default
    lines = assert_fits(default)
    assert any(line.strip().startswith(models.child) for line in lines)
    assert run_cli("models", "list", "--json") == 0
    assert {m["id"] for m in json.loads(out(capsys))["fine_tuned_models"]} >= {models.enc, models.child}


def test_a_queued_job_and_an_empty_store(tiny_models, monkeypatch, capsys):
    assert run_cli("api", "fine_tunes.list", "--table") == 0
    assert "No fine-tuning jobs yet" in out(capsys)
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)
    assert run_cli("api", "fine_tunes.create", "-t", tiny_models.train, "-m", tiny_models.encoder, "--no_follow") == 0
    job_id = json.loads(out(capsys))["id"]
    assert run_cli("api", "fine_tunes.list", "--table") == 0
    (line,) = assert_fits(out(capsys))[1:]
    assert line.startswith(job_id) and "pending" in line and f"from {tiny_models.encoder}"[:20] in line
    assert run_cli("api", "fine_tunes.get", "-i", job_id, "--table") == 0
    text = "\n".join(assert_fits(out(capsys)))
    assert "pending (queued)" in text and "fine-tuned model" not in text


def test_cutting_keeps_lines_within_the_width():
    assert clip("x" * 120) == "x" * 99 + "…" and clip("short") == "short"
    assert clip_middle("ada:ft-personal-2026-11-25-15-20-53", 20) == "ada:ft-pe…5-15-20-53"
    table = format_columns(["ID", "MODEL"], [["ft-1", "m" * 200], ["ft-2", "short"]])
    lines = assert_fits(table)
    assert len(lines[1]) == TABLE_WIDTH and lines[2].endswith("short")


@pytest.mark.parametrize("argv", [["api", "fine_tunes.list", "--table", "--latest"]])
def test_latest_still_prints_only_the_id(argv, capsys):
    assert run_cli(*argv) == 3  # nothing yet: not found
