"""Acceptance: code written for OpenAI's fine-tuning API runs against `tunelab serve` to the end
with only `base_url` and the model name changed. `openai_script` is such code, as OpenAI's
documentation writes it (upload, create the job, poll, then completions with logprobs=5 and chat
with top_logprobs); the test runs it against a real server on a tiny random-weight decoder."""

from __future__ import annotations

import math
import time

import pytest

from tests.helpers.tiny_models import LABELS, write_classification_jsonl
from tests.server.conftest import PROMPT, LiveServer


def openai_script(client, base_model: str, train_path, valid_path) -> dict:
    """OpenAI's workflow, unchanged but for the model name the caller passes."""
    training_file = client.files.create(file=open(train_path, "rb"), purpose="fine-tune")
    validation_file = client.files.create(file=open(valid_path, "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=base_model, training_file=training_file.id, validation_file=validation_file.id,
        hyperparameters={"n_epochs": 2}, suffix="reviews", metadata={"experiment": "chapter-4"})
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(1)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    events = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job.id, limit=10)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id)

    completion = client.completions.create(model=job.fine_tuned_model, prompt=PROMPT, max_tokens=1, temperature=0,
                                           logprobs=5)
    chat = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "great good love perfect"}],
        max_tokens=1, temperature=0, logprobs=True, top_logprobs=5)
    return {"job": job, "events": events.data, "checkpoints": checkpoints.data, "completion": completion,
            "chat": chat}


@pytest.mark.slow  # a real `tunelab serve` and its worker process train a tiny model
def test_code_written_for_openai_runs_to_the_end(tmp_path, tiny_models):
    server = LiveServer(tmp_path / "home")
    try:
        train = write_classification_jsonl(tmp_path / "train.jsonl", 60)
        valid = write_classification_jsonl(tmp_path / "valid.jsonl", 20, seed=1)
        out = openai_script(server.client(), str(tiny_models.decoder), train, valid)
    finally:
        server.stop()
    job = out["job"]
    assert job.fine_tuned_model and job.metadata == {"experiment": "chapter-4"}
    assert out["events"] and out["checkpoints"]
    choice = out["completion"].choices[0]
    top = choice.logprobs.top_logprobs[0]
    assert len(top) == 5 and set(top) <= set(LABELS) and choice.text in LABELS
    assert sum(math.exp(v) for v in top.values()) <= 1 + 1e-6
    content = out["chat"].choices[0].logprobs.content
    assert content and len(content[0].top_logprobs) <= 5 and content[0].top_logprobs
