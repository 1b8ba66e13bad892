"""Chat-format fine-tuning against a real `tunelab serve` (its worker process trains), written as code
for OpenAI's current API would be, with only base_url and the model name changed (issue 14)."""

from __future__ import annotations

import json
import math
import re
import time

import pytest

from tests.helpers.tiny_models import write_chat_jsonl
from tests.server.conftest import LiveServer

pytestmark = pytest.mark.slow  # a server, a worker and a model process


def test_chat_stars_against_a_live_server(tmp_path, tiny_models):
    train = write_chat_jsonl(tmp_path / "stars_chat.jsonl", 40)
    server = LiveServer(tmp_path / "home")
    try:
        client = server.client()
        # --- as written for OpenAI ---
        training_file = client.files.create(file=open(train, "rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(training_file=training_file.id, model=str(tiny_models.encoder),
                                             suffix="stars", hyperparameters={"n_epochs": 1})
        deadline = time.monotonic() + 120
        while job.status not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, job.status
            time.sleep(1)
            job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "succeeded", job.error
        messages = json.loads(train.read_text().splitlines()[0])["messages"][:-1]
        response = client.chat.completions.create(model=job.fine_tuned_model, messages=messages, max_tokens=1,
                                                  temperature=0, logprobs=True, top_logprobs=5)
        # --- end ---
        assert re.fullmatch(r"ft:enc:personal:stars:[A-Za-z0-9]{8}", job.fine_tuned_model)
        top = {t.token: math.exp(t.logprob) for t in response.choices[0].logprobs.content[0].top_logprobs}
        assert set(top) == {"1", "2", "3", "4", "5"} and sum(top.values()) == pytest.approx(1, abs=1e-3)
        assert response.choices[0].message.content == max(top, key=top.get)
    finally:
        server.stop()
