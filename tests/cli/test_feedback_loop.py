"""The loop of issue 12, end to end with a tiny model: serve, log, 200 labels from people, export
in the model's own format, `prepare_data` finds nothing to fix, continued training, and `compare`
of the old model against the new one on the held-out part."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import run_cli
from tests.helpers.tiny_models import write_classification_jsonl

pytestmark = pytest.mark.slow  # a worker process trains the continuation


def test_feedback_to_continued_training_and_compare(models, home, capsys):
    import openai
    from fastapi.testclient import TestClient

    from tunelab.data import prepare
    from tunelab.data.readers import read_prompt_completion
    from tunelab.server import create_app

    fresh = read_prompt_completion(write_classification_jsonl(home / "fresh.jsonl", 400, seed=7))
    seen, rows = set(), []
    for row in fresh:  # traffic of distinct reviews
        if row.prompt not in seen:
            seen.add(row.prompt)
            rows.append(row)
    rows = rows[:220]
    assert len(rows) >= 200
    app = create_app(models.store, isolate_models=False)
    with TestClient(app) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="sk", http_client=http, max_retries=0)
        answers = [client.completions.create(model=models.enc, prompt=r.prompt, max_tokens=1, temperature=0)
                   for r in rows]
        for answer, row in list(zip(answers, rows))[:200]:
            got = http.post("/v1/feedback", json={"id": answer.id, "label": row.completion.strip(),
                                                  "source": "reviewer"})
            assert got.status_code == 200, got.text
    corrections = sum(a.choices[0].text != r.completion for a, r in list(zip(answers, rows))[:200])

    assert run_cli("feedback", "export", "-m", models.enc, "--out", "loop") == 0
    out = capsys.readouterr().out
    assert f"Exported 200 labelled example(s) of {models.enc} ({corrections} correction(s)" in out
    train, held = home / "loop" / "train.jsonl", home / "loop" / "heldout.jsonl"
    assert len(train.read_text().splitlines()) == 160 and len(held.read_text().splitlines()) == 40
    provenance = json.loads((home / "loop" / "provenance.json").read_text())
    assert provenance["stratified"] and provenance["counts"]["corrections"] == corrections

    analysis = prepare.analyze(train)
    assert analysis.actions == [], [a.message for a in analysis.actions]
    assert run_cli("tools", "fine_tunes.prepare_data", "-f", str(train), "-q") == 0
    assert "No remediations found." in capsys.readouterr().out

    code = run_cli("api", "fine_tunes.create", "-m", models.enc, "-t", str(train), "--n_epochs", "1",
                   "--learning_rate_multiplier", "20")
    out = capsys.readouterr().out
    assert code == 0 and "Job complete! Status: succeeded" in out, out
    child = re.search(r"tunelab complete -m (\S+)", out).group(1)

    assert run_cli("compare", models.enc, child, "-f", str(held), "--out", "cmp", "--no-progress") == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0]
    assert header.index(models.enc) < header.index(child)  # old against new, Table 4.1 style
    assert "| accuracy |" in table
