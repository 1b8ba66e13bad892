"""`tunelab monitor`, `tunelab feedback ...` and `tunelab logs ...` as a user types them, on a tiny
trained classifier whose answers were logged by the in-process server."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tunelab.store.predictions import PredictionLog


@pytest.fixture
def logged(models, home):
    """Predictions of the trained tiny classifier on its test file, logged through /v1/completions."""
    from fastapi.testclient import TestClient

    from tunelab.data.readers import read_prompt_completion
    from tunelab.server import create_app

    rows = read_prompt_completion(models.test)
    app = create_app(models.store, isolate_models=False)
    with TestClient(app) as http:
        ids = [http.post("/v1/completions", json={"model": models.enc, "prompt": r.prompt, "max_tokens": 1}).json()["id"]
               for r in rows]
    return models, rows, ids


def test_monitor_prints_a_table_and_json_and_plots(logged, capsys, home):
    models, _, _ = logged
    code = run_cli("monitor", "-m", models.enc, "--window", "15", "--plot", "timeline.png")
    captured = capsys.readouterr()
    assert code in (0, 3), captured.err
    assert "Scoring the reference" in captured.err and "cached" in captured.err
    out = captured.out
    assert "window" in out and "est.acc" in out and "Reference: validation file" in out
    assert (home / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    code = run_cli("monitor", "-m", models.enc, "--window", "15", "--json")
    report = json.loads(capsys.readouterr().out)
    assert [w["n"] for w in report["windows"]] == [15, 15] and report["reference"]["cached"]
    assert code == (3 if report["alarm"] else 0)


def test_monitor_exit_3_on_alarm_and_2_on_unknown_model(logged, capsys):
    models, _, _ = logged
    # a threshold nothing can stay under: every window alarms
    assert run_cli("monitor", "-m", models.enc, "--window", "1d", "--max-duplicates", "0", "--max-text-auc", "0",
                   "--min-rows", "1") == 3
    assert "ALARM" in capsys.readouterr().out
    assert run_cli("monitor", "-m", "enc:ft-personal-2020-01-01-00-00-00") == 2
    assert "No such fine-tuned model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli("monitor", "-m", models.enc, "--max-ks", "2")


def test_feedback_add_queue_export(logged, capsys, home):
    models, rows, ids = logged
    assert run_cli("feedback", "queue", "-m", models.enc, "--limit", "5") == 0
    out = capsys.readouterr().out
    assert "margin" in out and out.count("cmpl-") == 5
    assert run_cli("feedback", "add", "--id", ids[0], "--label", rows[0].completion.strip()) == 0
    assert "Recorded fb-" in capsys.readouterr().out
    assert run_cli("feedback", "add", "--id", ids[1], "--label", "9") == 2
    err = capsys.readouterr().err
    assert "is not a label of" in err and "so '1' names ' 1'" in err  # the hint shows one of its own labels
    assert run_cli("feedback", "add", "--id", "cmpl-doesnotexist", "--label", "4") == 3
    capsys.readouterr()
    assert run_cli("feedback", "add", "-m", models.enc, "--text", "love love great", "--label", "5") == 0
    assert run_cli("feedback", "queue", "-m", models.enc, "--json", "--limit", "100") == 0
    queue = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert len(queue) == len(rows) - 1 and ids[0] not in {q["response_id"] for q in queue}
    assert run_cli("feedback", "export", "-m", models.enc, "--out", "fb", "--holdout", "0.5") == 0
    out = capsys.readouterr().out
    assert "Exported 2 labelled example(s)" in out and "fine_tunes.create" in out
    # the counts in brackets add up to the examples: the text label is neither a correction nor a confirmation
    assert any(f"({c} correction(s), {1 - c} confirmation(s), 1 for a text never served)" in out for c in (0, 1))
    assert (home / "fb" / "train.jsonl").exists() and (home / "fb" / "provenance.json").exists()


def test_feedback_import_checks_the_whole_file_first(logged, capsys, home):
    models, rows, ids = logged
    good = home / "good.jsonl"
    good.write_text("".join(json.dumps({"id": i, "label": r.completion}) + "\n" for i, r in zip(ids[:10], rows))
                    + json.dumps({"text": "fits small", "label": "3"}) + "\n")
    bad = home / "bad.jsonl"
    bad.write_text(json.dumps({"id": ids[0], "label": "4"}) + "\n"
                   + json.dumps({"id": "cmpl-unknown", "label": "4"}) + "\n"
                   + json.dumps({"id": ids[1], "label": "seven"}) + "\n"
                   + json.dumps({"text": "no model", "label": "4"}) + "\n")
    assert run_cli("feedback", "import", str(bad), "-m", "") == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2:" in err and "bad.jsonl:3:" in err and "bad.jsonl:4:" in err and "bad.jsonl:1:" not in err
    assert "nothing was written" in err and PredictionLog(models.store).feedback() == []
    broken = home / "broken.jsonl"
    broken.write_text(json.dumps({"id": ids[0], "label": "4"}) + "\n{not json\n")
    assert run_cli("feedback", "import", str(broken)) == 2
    assert "line 2: malformed JSON" in capsys.readouterr().err and PredictionLog(models.store).feedback() == []
    csv = home / "labels.csv"
    csv.write_text("id,index,label,source\n" + "".join(f"{i},0,{r.completion.strip()},csv\n"
                                                       for i, r in zip(ids[10:15], rows[10:15])))
    assert run_cli("feedback", "import", str(good), "-m", models.enc) == 0
    assert run_cli("feedback", "import", str(csv)) == 0
    assert "Imported 5 label(s)" in capsys.readouterr().out
    feedback = PredictionLog(models.store).feedback()
    assert len(feedback) == 16 and {f.source for f in feedback} == {"import", "csv"}


def test_importing_a_file_again_keeps_later_corrections(logged, capsys, home):
    """A team's cumulative label file imported again (by hand or from cron) must not put its old
    labels back over a correction made since, nor copy every row each time."""
    models, rows, ids = logged
    team = home / "returns.csv"
    team.write_text("id,label,source\n" + "".join(f"{i},1,returns-team\n" for i in ids[:5])
                    + f"{ids[5]},1,returns-team\n{ids[5]},2,returns-team\n{ids[5]},1,returns-team\n")
    assert run_cli("feedback", "import", str(team)) == 0
    out = capsys.readouterr().out  # 1, 2, then 1 again on one prediction: the last line counts
    assert "Imported 6 label(s)" in out and "2 row(s) skipped, a later line of the same source relabels" in out
    assert run_cli("feedback", "add", "--id", ids[0], "--label", "3", "--source", "support-chat") == 0
    assert run_cli("feedback", "import", str(team)) == 0
    out = capsys.readouterr().out
    assert "Imported 0 label(s)" in out and "6 row(s) skipped, their source had already given that label" in out
    log = PredictionLog(models.store)
    assert len(log.feedback(models.enc)) == 7
    latest = log.latest_feedback(models.enc)
    assert latest[(ids[0], 0)].label.strip() == "3" and latest[(ids[5], 0)].label.strip() == "1"
    team.write_text("id,label,source\n" + f"{ids[1]},4,returns-team\n")  # the team changed its mind
    assert run_cli("feedback", "import", str(team)) == 0
    assert log.latest_feedback(models.enc)[(ids[1], 0)].label.strip() == "4"


def test_logs_list_and_prune(logged, capsys):
    models, rows, _ = logged
    assert run_cli("logs", "list") == 0
    out = capsys.readouterr().out
    assert models.enc in out and str(len(rows)) in out
    assert run_cli("logs", "list", "-m", models.enc, "--limit", "3") == 0
    assert capsys.readouterr().out.count("cmpl-") == 3
    assert run_cli("logs", "prune", "--keep-days", "1") == 0
    assert "Deleted 0 logged prediction(s)" in capsys.readouterr().out
    assert run_cli("logs", "prune", "--keep-days", "0.0000001") == 0
    assert f"Deleted {len(rows)} logged" in capsys.readouterr().out
    assert run_cli("logs", "prune", "--keep-days", "-1") == 2
