"""Chat-format training data end to end through the official `openai` client (issue 14): upload,
`fine_tuning.jobs.create`, train (the job runs in this process), then `/v1/chat/completions` with
logprobs over the labels and `evaluate` on a chat test file, with the same metrics as the
prompt/completion form. Once with the classifier method (the chapter's stars task written as chat)
and once with the lm method through the base model's chat template, multi-turn with `weight`."""

from __future__ import annotations

import json
import math
import os
import re

import openai
import pytest

from tests.helpers.tiny_models import write_chat_jsonl
from tunelab.data.chat import transcript
from tunelab.evaluation import evaluate_model
from tunelab.training.runner import run_job

LABELS = ["1", "2", "3", "4", "5"]
REVIEW = [{"role": "system", "content": "rate the review"}, {"role": "user", "content": "great good love perfect"}]


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Jobs stay queued; each test runs its job in this process with `run_job`."""
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)


def run_queued(store, client, job_id: str):
    run_job(store, store.claim_next_job(os.getpid()))
    return client.fine_tuning.jobs.retrieve(job_id)


def upload(client, path) -> str:
    record = client.files.create(file=open(path, "rb"), purpose="fine-tune")
    assert record.status == "processed"
    return record.id


def as_prompt_completion(chat_path, out_path):
    """The same rows as prompt/completion, the prompt being the transcript the classifier reads."""
    with open(chat_path) as src, open(out_path, "w") as dst:
        for line in src:
            messages = json.loads(line)["messages"]
            dst.write(json.dumps({"prompt": transcript(messages[:-1]), "completion": messages[-1]["content"]}) + "\n")
    return out_path


def check_label_logprobs(client, model: str, *, head: bool = True) -> dict[str, float]:
    response = client.chat.completions.create(model=model, messages=REVIEW, max_tokens=1, temperature=0,
                                              logprobs=True, top_logprobs=5)
    choice = response.choices[0]
    top = {t.token: t.logprob for t in choice.logprobs.content[0].top_logprobs}
    assert set(top) == set(LABELS)  # the model's five labels, each one "token"
    assert choice.message.content == max(top, key=top.get) and choice.finish_reason == "stop"
    total = sum(math.exp(v) for v in top.values())
    # a head's softmax sums to 1; the lm method's P(label tokens | prompt) leave room for other text
    assert total == pytest.approx(1.0, abs=1e-3) if head else 0 < total <= 1
    return top


def test_chat_stars_with_the_classifier_method(client, store, tiny_models, tmp_path):
    train = write_chat_jsonl(tmp_path / "train.jsonl", 40)
    valid = write_chat_jsonl(tmp_path / "valid.jsonl", 15, seed=1)
    test = write_chat_jsonl(tmp_path / "test.jsonl", 15, seed=2)
    job = client.fine_tuning.jobs.create(
        model=str(tiny_models.encoder), training_file=upload(client, train), validation_file=upload(client, valid),
        suffix="Chat Stars!", hyperparameters={"n_epochs": 1, "learning_rate_multiplier": 20},
        extra_body={"compute_classification_metrics": True, "classification_n_classes": 5})
    assert job.training_method == "classifier" and job.classification["labels"] == LABELS
    assert "Suffix normalised to 'chat-stars'" in " ".join(job.notices)
    job = run_queued(store, client, job.id)
    assert job.status == "succeeded", job.error
    model = job.fine_tuned_model
    assert re.fullmatch(r"ft:enc:personal:chat-stars:[A-Za-z0-9]{8}", model), model
    assert client.models.retrieve(model).id == model
    assert store.find_model(model).meta["chat_format"] == "transcript"
    from tunelab.models.loading import load_fine_tuned

    assert load_fine_tuned(store.find_model(model).path)[1].truncation_side == "left"  # a long chat keeps its end
    top = check_label_logprobs(client, model)

    report = evaluate_model(model, test, store=store, progress=False, out_dir=tmp_path / "chat-report")
    assert report["labels"] == LABELS and report["n"] == 15
    # the prompt/completion form of the same rows scores the same: same metrics, same numbers
    same = evaluate_model(model, as_prompt_completion(test, tmp_path / "test-pc.jsonl"), store=store,
                          progress=False)
    for key in ("accuracy", "macro_f1", "weighted_f1", "mae", "one_off_accuracy", "ece", "mean_logprob",
                "confusion_matrix", "per_class"):
        assert report[key] == same[key], key
    assert set(report) == set(same)
    same_as_evaluate(client, model, test, tmp_path / "chat-report")
    assert top  # the review of REVIEW got all five labels too


def same_as_evaluate(client, model: str, test, report_dir) -> None:
    """/v1/chat/completions answers the first test row with the probabilities `evaluate` reported."""
    first = json.loads((report_dir / "predictions.jsonl").read_text().splitlines()[0])
    direct = client.chat.completions.create(
        model=model, messages=json.loads(test.read_text().splitlines()[0])["messages"][:-1], max_tokens=1,
        logprobs=True, top_logprobs=5).choices[0].logprobs.content[0].top_logprobs
    assert {t.token: math.exp(t.logprob) for t in direct} == pytest.approx(first["probs"], abs=2e-4)


@pytest.fixture(scope="module")
def marked_decoder(tmp_path_factory):
    """A decoder whose chat template writes a word of the vocabulary ("###") before every message, so
    that its renderings and the transcript differ in tokens, not only in unknown words."""
    from tests.helpers.tiny_models import build_tiny_decoder

    template = ("{% for m in messages %}### {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}###{% endif %}")
    return build_tiny_decoder(tmp_path_factory.mktemp("marked") / "dec", chat_template=template)


def test_chat_with_the_lm_method_through_the_chat_template(client, store, marked_decoder, tmp_path):
    rows = [json.loads(line) for line in write_chat_jsonl(tmp_path / "base.jsonl", 30).read_text().splitlines()]
    for row in rows[::3]:  # multi-turn rows: an earlier reply that is context only (weight 0)
        row["messages"][1:1] = [{"role": "user", "content": "hello"},
                                {"role": "assistant", "content": "not a label", "weight": 0}]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = write_chat_jsonl(tmp_path / "test.jsonl", 10, seed=2)
    job = client.fine_tuning.jobs.create(model=str(marked_decoder), training_file=upload(client, train),
                                         method="lm", hyperparameters={"n_epochs": 1, "batch_size": 8})
    job = run_queued(store, client, job.id)
    assert job.status == "succeeded", job.error
    assert job.trained_tokens > 0
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert "Chat data: messages rendered with the base model's chat template." in events
    record = store.find_model(job.fine_tuned_model)
    assert record.method == "lm" and record.meta["chat_format"] == "template" and record.labels == LABELS
    check_label_logprobs(client, job.fine_tuned_model, head=False)
    report = evaluate_model(job.fine_tuned_model, test, store=store, progress=False, out_dir=tmp_path / "report")
    assert report["method"] == "lm" and report["labels"] == LABELS and report["n"] == 10
    same_as_evaluate(client, job.fine_tuned_model, test, tmp_path / "report")  # both render with the template


def test_bad_chat_files_are_refused_at_upload_with_their_lines(client, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"
                    + json.dumps({"messages": [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "yo", "weight": 3}]}) + "\n")
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.files.create(file=open(path, "rb"), purpose="fine-tune")
    message = excinfo.value.message
    assert "1: field `messages` has no assistant message" in message
    assert "2: field `messages[1]`.weight must be 0 or 1, got 3" in message
