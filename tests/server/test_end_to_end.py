"""The book's §4.6.3 workflow through the official `openai` client, changing only base_url: upload,
fine-tune, follow, then call the fine-tuned model by id with logprobs as Listing 4.3 does.
Once in-process (TestClient) and once against a real `tunelab serve` on a loopback port."""

from __future__ import annotations

import concurrent.futures
import math
import re
import time

import httpx
import openai
import pytest

from tests.server.conftest import LABELS, PROMPT, LiveServer, wait_dead
from tests.helpers.tiny_models import write_classification_jsonl

TERMINAL = ("succeeded", "failed", "cancelled")
pytestmark = pytest.mark.slow  # a worker process trains; the live tests run `tunelab serve`


def wait_for_job(client: openai.OpenAI, job_id: str, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    job = client.fine_tuning.jobs.retrieve(job_id)
    while job.status not in TERMINAL:
        assert time.monotonic() < deadline, f"job still {job.status} after {timeout}s"
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job_id)
    return job


def fine_tune(client: openai.OpenAI, base: str, train, valid):
    """Listing-style: upload both files, create the job with classification metrics, wait."""
    train_file = client.files.create(file=open(train, "rb"), purpose="fine-tune")
    valid_file = client.files.create(file=open(valid, "rb"), purpose="fine-tune")
    assert train_file.status == "processed" and train_file.purpose == "fine-tune"
    job = client.fine_tuning.jobs.create(
        model=base, training_file=train_file.id, validation_file=valid_file.id,
        hyperparameters={"n_epochs": 2, "learning_rate_multiplier": 2.0, "batch_size": "auto"},
        suffix="reviews",
        extra_body={"compute_classification_metrics": True, "classification_n_classes": 5})
    assert job.status in ("validating_files", "queued", "running")
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.learning_rate_multiplier == 2.0
    assert job.training_file == train_file.id and job.validation_file == valid_file.id
    return wait_for_job(client, job.id), train_file


def check_listing_4_3(client: openai.OpenAI, model_id: str) -> None:
    response = client.completions.create(model=model_id, prompt=PROMPT, max_tokens=1, temperature=0, logprobs=5)
    choice = response.choices[0]
    top = choice.logprobs.top_logprobs[0]
    assert set(top) == set(LABELS)  # five labels, each one "token"
    assert choice.text == max(top, key=top.get)  # temperature 0: the most probable label
    assert choice.logprobs.tokens == [choice.text]
    assert sum(math.exp(v) for v in top.values()) == pytest.approx(1.0, abs=1e-3)
    assert response.usage.completion_tokens == 1 and response.usage.prompt_tokens > 0
    assert response.model == model_id and response.object == "text_completion"


def test_fine_tune_then_complete_in_process(client, tiny_models, training_files):
    job, train_file = fine_tune(client, str(tiny_models.encoder), *training_files)
    assert job.status == "succeeded", job.error
    # the current endpoint names models as OpenAI does today: ft:<base>:<org>:<suffix>:<id>
    assert re.fullmatch(r"ft:enc:personal:reviews:[A-Za-z0-9]{8}", job.fine_tuned_model or ""), job.fine_tuned_model
    assert job.result_files and job.trained_tokens > 0

    # events: newest first, paged with `after` like OpenAI's
    first = client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert len(first.data) == 2 and first.has_more
    assert first.data[0].message == "Job succeeded."
    second = client.fine_tuning.jobs.list_events(job.id, limit=2, after=first.data[-1].id)
    assert second.data[0].created_at <= first.data[-1].created_at
    everything = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data]
    assert everything[-1].startswith("Created fine-tuning job") and len(everything) > 4
    assert len({e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)}) == len(everything)
    auto_paged = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=3)]  # the client pages on
    assert auto_paged == everything

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == sorted((c.step_number for c in checkpoints), reverse=True)
    assert checkpoints[0].metrics.train_loss is not None

    results = client.files.content(job.result_files[0]).text
    assert results.startswith("step,")
    assert client.files.content(train_file.id).content == training_files[0].read_bytes()

    assert job.fine_tuned_model in [m.id for m in client.models.list()]
    model = client.models.retrieve(job.fine_tuned_model)
    assert model.owned_by == "user-personal"
    check_listing_4_3(client, job.fine_tuned_model)

    listed = client.fine_tuning.jobs.list(limit=10)
    assert [j.id for j in listed.data] == [job.id] and not listed.has_more

    deleted = client.models.delete(job.fine_tuned_model)
    assert deleted.deleted
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=job.fine_tuned_model, prompt=PROMPT, max_tokens=1)


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_models):
    """A real server with an API key and a 1 MB body limit, and a model fine-tuned through it."""
    root = tmp_path_factory.mktemp("live")
    server = LiveServer(root / "home", "--max-upload-mb", "1", "--max-loaded-models", "2", api_key="sk-live-key")
    try:
        base = tiny_models.encoder
        train = write_classification_jsonl(root / "train.jsonl", 60)
        valid = write_classification_jsonl(root / "valid.jsonl", 20, seed=1)
        job, _ = fine_tune(server.client(), str(base), train, valid)
        assert job.status == "succeeded", job.error
        server.model_id = job.fine_tuned_model
        server.job_id = job.id
        yield server
        stats = httpx.get(f"{server.base_url}/tunelab/stats", headers={"Authorization": f"Bearer {server.api_key}"})
        model_pids = list(stats.json()["model_pids"].values())
    finally:
        server.stop()
    assert model_pids, "the model should have been served from its own process"
    for pid in model_pids:  # stopping the server (Ctrl-C) stops its model processes
        assert wait_dead(pid)


def test_live_server_fine_tunes_and_completes(live):
    client = live.client()
    check_listing_4_3(client, live.model_id)
    assert live.model_id in [m.id for m in client.models.list()]
    assert client.fine_tuning.jobs.retrieve(live.job_id).fine_tuned_model == live.model_id
    events = client.fine_tuning.jobs.list_events(live.job_id, limit=5)
    assert events.data[0].message == "Job succeeded." and events.has_more


def test_live_server_streams(live):
    stream = live.client().completions.create(model=live.model_id, prompt=PROMPT, max_tokens=1, temperature=0,
                                              logprobs=3, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text.strip() in {l.strip() for l in LABELS}
    assert chunks[-1].choices[0].finish_reason == "stop"
    with httpx.stream("GET", f"{live.base_url}/fine-tunes/{live.job_id}/events", params={"stream": "true"},
                      headers={"Authorization": f"Bearer {live.api_key}"}, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and "Fine-tune succeeded" in lines[-2]  # the legacy texts


def test_live_server_requires_the_key(live):
    with pytest.raises(openai.AuthenticationError) as wrong:
        live.client(api_key="sk-wrong").models.list()
    assert wrong.value.status_code == 401 and wrong.value.code == "invalid_api_key"
    assert httpx.get(f"{live.base_url}/models").status_code == 401
    assert httpx.post(f"{live.base_url}/completions", json={}).json()["error"]["type"] == "authentication_error"


def test_live_server_refuses_oversize_upload(live, tmp_path):
    big = tmp_path / "big.jsonl"
    line = '{"prompt": "%s", "completion": " 1"}\n' % ("word " * 200)
    big.write_text(line * (int(1.5 * 2**20) // len(line)))
    with pytest.raises(openai.APIStatusError) as excinfo:
        live.client().files.create(file=open(big, "rb"), purpose="fine-tune")
    assert excinfo.value.status_code == 413
    assert excinfo.value.body["type"] == "invalid_request_error"


def test_live_server_batches_concurrent_requests(live):
    """32 clients at once: every answer is the one a lone request gets, and batches held > 1 prompt."""
    client = live.client()
    prompts = [f"{w} {w} good\n\n###\n\n" for w in ("great", "bad", "awful", "fine", "love", "hate", "dress", "poor")]
    alone = {p: client.completions.create(model=live.model_id, prompt=p, max_tokens=1, temperature=0, logprobs=5)
             for p in prompts}

    def ask(i: int):
        p = prompts[i % len(prompts)]
        c = live.client().completions.create(model=live.model_id, prompt=p, max_tokens=1, temperature=0, logprobs=5)
        return p, c

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ask, range(96)))
    for p, c in answers:
        expected = alone[p].choices[0].logprobs.top_logprobs[0]
        got = c.choices[0].logprobs.top_logprobs[0]
        assert c.choices[0].text == alone[p].choices[0].text
        assert got == pytest.approx(expected, abs=1e-4)
    stats = httpx.get(f"{live.base_url}/tunelab/stats", headers={"Authorization": f"Bearer {live.api_key}"}).json()
    batching = stats["batching"][live.model_id]
    assert batching["max_prompts_per_batch"] > 1
    assert batching["batches"] < batching["requests"]
