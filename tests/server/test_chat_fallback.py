"""The lm method on chat data when the base model's tokenizer has no chat template: the documented
transcript fallback (tunelab.data.chat.transcript) in training and in /v1/chat/completions. (A model
trained on prompt/completion rows without a template still refuses chat messages with a clear 400:
tests/server/test_routes.py.)"""

from __future__ import annotations

import json
import os
import random

import pytest

from tests.helpers.tiny_models import WORDS, build_tiny_decoder
from tunelab.training.runner import run_job


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)


@pytest.fixture(scope="module")
def plain_decoder(tmp_path_factory):
    return build_tiny_decoder(tmp_path_factory.mktemp("plain") / "dec", chat_template=None)


def free_form_chat(path, n=24):
    rng = random.Random(3)
    with open(path, "w") as fh:
        for _ in range(n):
            turn = lambda: " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
            messages = [{"role": "user", "content": turn()}, {"role": "assistant", "content": turn()},
                        {"role": "user", "content": turn()}, {"role": "assistant", "content": turn()}]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def test_lm_chat_without_a_template_uses_the_transcript(client, store, plain_decoder, tmp_path):
    train = client.files.create(file=open(free_form_chat(tmp_path / "chat.jsonl"), "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=str(plain_decoder), training_file=train.id,
                                         hyperparameters={"n_epochs": 1, "batch_size": 8})
    assert job.training_method == "lm"  # free-form replies on a causal model
    run_job(store, store.claim_next_job(os.getpid()))
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert any(e.startswith("Chat data: messages rendered with tunelab's transcript template") for e in events)
    record = store.find_model(job.fine_tuned_model)
    assert record.meta["chat_format"] == "transcript" and not record.labels

    response = client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "great dress"}], max_tokens=4,
        temperature=0, logprobs=True, top_logprobs=2)
    choice = response.choices[0]
    assert choice.finish_reason in ("stop", "length") and isinstance(choice.message.content, str)
    assert len(choice.logprobs.content) == response.usage.completion_tokens
    # the prompt the model read is the transcript: its length in tokens is the usage's prompt tokens
    from tunelab.data.chat import transcript
    from tunelab.models.loading import load_tokenizer

    prompt = transcript([{"role": "user", "content": "great dress"}])
    tokenizer = load_tokenizer(store.find_model(job.fine_tuned_model).path)
    assert response.usage.prompt_tokens == len(tokenizer(prompt)["input_ids"])
