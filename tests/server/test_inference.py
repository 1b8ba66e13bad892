"""Completions, chat and label scores on tiny random-weight models (real inference), through the
official client: what the server answers is what the predictor computes. The routes' own logic is
covered with fake predictors in test_routes.py."""

from __future__ import annotations

import math

import numpy as np
import openai
import pytest

from tests.server.conftest import LABELS, PROMPT


def test_classifier_completion_matches_predictor(client, real_models, store):
    from tunelab.inference.predictor import load_predictor

    model = real_models["classifier"]
    response = client.completions.create(model=model, prompt=[PROMPT, "bad awful"], max_tokens=1, temperature=0,
                                         logprobs=5)
    assert [c.index for c in response.choices] == [0, 1]
    scores = load_predictor(model, store).score_labels([PROMPT, "bad awful"])
    for choice, row in zip(response.choices, scores):
        top = choice.logprobs.top_logprobs[0]
        assert list(top.values()) == sorted(top.values(), reverse=True)
        assert top == pytest.approx({l: float(v) for l, v in zip(LABELS, row)}, abs=1e-5)
        assert choice.text == LABELS[int(np.argmax(row))]
        assert choice.finish_reason == "stop"


def test_logprobs_top_k_and_n(client, real_models):
    model = real_models["lm-labels"]
    response = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=1.0, n=3, seed=1,
                                         logprobs=2)
    assert len(response.choices) == 3
    for choice in response.choices:
        assert len(choice.logprobs.top_logprobs[0]) == 2
        assert choice.text in LABELS
    # lm labels: P(label tokens | prompt); the label probabilities sum to at most 1
    full = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=0, logprobs=20)
    top = full.choices[0].logprobs.top_logprobs[0]
    assert set(top) == set(LABELS) and sum(math.exp(v) for v in top.values()) <= 1 + 1e-6
    plain = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=0)
    assert plain.choices[0].logprobs is None


def test_generation_with_logprobs_stop_echo(client, real_models):
    model = real_models["lm"]
    response = client.completions.create(model=model, prompt="great good", max_tokens=5, temperature=0, logprobs=3)
    choice = response.choices[0]
    lp = choice.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) <= 5
    assert "".join(lp.tokens) == choice.text
    assert all(len(t) <= 3 for t in lp.top_logprobs)
    assert response.usage.completion_tokens == len(lp.tokens)
    assert choice.finish_reason in ("stop", "length")
    again = client.completions.create(model=model, prompt="great good", max_tokens=5, temperature=0)
    assert again.choices[0].text == choice.text  # greedy is deterministic
    echoed = client.completions.create(model=model, prompt="great good", max_tokens=5, temperature=0, echo=True)
    assert echoed.choices[0].text == "great good" + choice.text
    if lp.tokens:
        stopped = client.completions.create(model=model, prompt="great good", max_tokens=5, temperature=0,
                                            stop=[lp.tokens[0]])
        assert stopped.choices[0].text == "" and stopped.choices[0].finish_reason == "stop"


def test_stream_completion(client, real_models):
    model = real_models["lm"]
    full = client.completions.create(model=model, prompt="good", max_tokens=4, temperature=0)
    chunks = list(client.completions.create(model=model, prompt="good", max_tokens=4, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == full.choices[0].text
    assert chunks[-1].usage.total_tokens == full.usage.total_tokens


def test_chat_completion_with_template(client, real_models):
    model = real_models["lm"]
    messages = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "great dress"}]
    response = client.chat.completions.create(model=model, messages=messages, max_tokens=4, temperature=0,
                                              logprobs=True, top_logprobs=2)
    choice = response.choices[0]
    assert response.object == "chat.completion" and choice.message.role == "assistant"
    content = choice.logprobs.content
    assert "".join(t.token for t in content) == choice.message.content
    assert all(len(t.top_logprobs) == 2 and t.bytes == list(t.token.encode()) for t in content)
    # the chat prompt is the template's rendering, completed like a legacy prompt
    prompt = "system: be nice\nuser: great dress\nassistant:"
    legacy = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0)
    assert legacy.choices[0].text == choice.message.content
    streamed = list(client.chat.completions.create(model=model, messages=messages, max_tokens=4, temperature=0,
                                                   stream=True))
    assert streamed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == choice.message.content
    assert streamed[-1].choices[0].finish_reason in ("stop", "length")
    # without max_tokens: as much as fits in the model's 256 positions
    free = client.chat.completions.create(model=model, messages=messages, temperature=0)
    assert free.usage.prompt_tokens + free.usage.completion_tokens <= 256


def test_chat_needs_a_template(client, real_models):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=real_models["classifier"], messages=[{"role": "user", "content": "hi"}])
    assert "chat template" in excinfo.value.message


def test_label_scores_give_every_label(http, real_models, store):
    from tunelab.inference.predictor import load_predictor

    for kind in ("classifier", "lm-labels"):
        response = http.post("/v1/labels/score", json={"model": real_models[kind], "prompt": [PROMPT, "bad"]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["labels"] == LABELS and len(body["data"]) == 2
        expected = load_predictor(real_models[kind], store).score_labels([PROMPT, "bad"])
        for item, row in zip(body["data"], expected):
            assert list(item["logprobs"]) == LABELS
            assert list(item["logprobs"].values()) == pytest.approx(list(row), abs=1e-5)
            assert item["label"] == LABELS[int(np.argmax(row))]
    single = http.post("/v1/labels/score", json={"model": real_models["classifier"], "prompt": "x"}).json()
    assert len(single["data"]) == 1
    bad = http.post("/v1/labels/score", json={"model": real_models["lm"], "prompt": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "not_a_classifier"
