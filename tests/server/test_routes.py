"""The inference routes with fake predictors (tests/helpers/fake_predictor.py): completions, chat,
label scores, models and the warm pool, in-process and in milliseconds. What they check is the
routes' own logic (label mode, top-k trimming, n, echo, stop, streaming, usage, chat rendering,
errors); test_inference.py checks the same routes against real tiny models."""

from __future__ import annotations

import json
import math

import openai
import pytest

from tests.helpers.fake_predictor import LM_LABEL_MASS
from tests.server.conftest import LABELS, PROMPT, make_client


def top_k(scores: dict[str, float], k: int) -> dict[str, float]:
    return dict(sorted(scores.items(), key=lambda kv: -kv[1])[:k])


# -- completions: label mode ----------------------------------------------------------------------

def test_classifier_completion_is_the_top_label(client, models, fake_predictors):
    model = models["classifier"]
    fake = fake_predictors.get(model)
    prompts = [PROMPT, "bad awful"]
    response = client.completions.create(model=model, prompt=prompts, max_tokens=1, temperature=0, logprobs=5)
    assert response.object == "text_completion" and response.model == model
    assert [c.index for c in response.choices] == [0, 1]
    for prompt, choice in zip(prompts, response.choices):
        expected = dict(zip(LABELS, fake.expected_scores(prompt)))
        top = choice.logprobs.top_logprobs[0]
        assert top == pytest.approx(expected)
        assert list(top.values()) == sorted(top.values(), reverse=True)
        assert choice.text == max(expected, key=expected.get)
        assert choice.logprobs.tokens == [choice.text] and choice.finish_reason == "stop"
        assert sum(math.exp(v) for v in top.values()) == pytest.approx(1.0)
    assert response.usage.completion_tokens == 2
    assert response.usage.prompt_tokens == sum(fake.count_tokens(p) for p in prompts)
    assert fake.calls == [("complete", 2)]  # both prompts in one predictor call


def test_label_mode_top_k_n_and_seed(client, models, fake_predictors):
    model = models["lm-labels"]
    expected = dict(zip(LABELS, fake_predictors.get(model).expected_scores(PROMPT)))
    response = client.completions.create(model=model, prompt=PROMPT, max_tokens=5, temperature=1.0, n=3, seed=1,
                                         logprobs=2)
    assert [c.index for c in response.choices] == [0, 1, 2]
    for choice in response.choices:
        assert choice.text in LABELS
        assert choice.logprobs.top_logprobs[0] == pytest.approx(top_k(expected, 2))
        assert choice.logprobs.token_logprobs[0] == pytest.approx(expected[choice.text])
    again = client.completions.create(model=model, prompt=PROMPT, max_tokens=5, temperature=1.0, n=3, seed=1)
    assert [c.text for c in again.choices] == [c.text for c in response.choices]  # seeded sampling repeats
    full = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=0, logprobs=20)
    top = full.choices[0].logprobs.top_logprobs[0]
    assert set(top) == set(LABELS)
    assert sum(math.exp(v) for v in top.values()) == pytest.approx(LM_LABEL_MASS)  # lm labels: at most 1
    plain = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=0)
    assert plain.choices[0].logprobs is None


def test_label_mode_echo(client, models):
    response = client.completions.create(model=models["classifier"], prompt=PROMPT, max_tokens=1, temperature=0,
                                         echo=True, logprobs=1)
    choice = response.choices[0]
    assert choice.text.startswith(PROMPT) and choice.text[len(PROMPT):] in LABELS
    assert choice.logprobs.text_offset == [len(PROMPT)]


# -- completions: free-form generation ------------------------------------------------------------

def test_generation_with_logprobs_stop_echo(client, models, fake_predictors):
    model = models["lm"]
    fake = fake_predictors.get(model)
    response = client.completions.create(model=model, prompt="great good", max_tokens=5, temperature=0, logprobs=3)
    choice = response.choices[0]
    assert choice.text == fake.expected_text("great good", 5) and choice.finish_reason == "length"
    lp = choice.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
    assert "".join(lp.tokens) == choice.text
    assert all(len(t) == 3 for t in lp.top_logprobs)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(5)]
    assert response.usage.completion_tokens == 5
    echoed = client.completions.create(model=model, prompt="great good", max_tokens=5, temperature=0, echo=True,
                                       logprobs=0)
    assert echoed.choices[0].text == "great good" + choice.text
    assert echoed.choices[0].logprobs.text_offset[0] == len("great good")
    stop_at = lp.tokens[2]
    stopped = client.completions.create(model=model, prompt="great good", max_tokens=5, temperature=0,
                                        stop=[stop_at, "zzz"])
    assert stopped.choices[0].text == choice.text[:choice.text.find(stop_at)]
    assert stopped.choices[0].finish_reason == "stop"


def test_generation_n_and_natural_stop(client, store, fake_predictors):
    model = fake_predictors.register(store, "lm", stop_after=2, suffix="short")
    response = client.completions.create(model=model, prompt=["a", "b"], max_tokens=8, temperature=0.7, n=2, seed=3)
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    assert all(c.finish_reason == "stop" for c in response.choices)
    assert response.usage.completion_tokens == 4 * 2


def test_stream_completion(client, models):
    model = models["lm"]
    full = client.completions.create(model=model, prompt="good", max_tokens=4, temperature=0, logprobs=1)
    chunks = list(client.completions.create(model=model, prompt="good", max_tokens=4, temperature=0, stream=True,
                                            logprobs=1, stream_options={"include_usage": True}))
    text_chunks = [c for c in chunks if c.choices and c.choices[0].text]
    assert "".join(c.choices[0].text for c in text_chunks) == full.choices[0].text
    assert [c.choices[0].logprobs.tokens[0] for c in text_chunks] == full.choices[0].logprobs.tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == full.usage.total_tokens


def test_stream_wire_format_ends_with_done(http, models):
    response = http.post("/v1/completions", json={"model": models["classifier"], "prompt": PROMPT, "max_tokens": 1,
                                                  "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    bodies = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(b["choices"][0]["text"] for b in bodies) in LABELS
    assert bodies[-1]["choices"][0]["finish_reason"] == "stop"


def test_context_length_and_unsupported_parameters(client, models):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.completions.create(model=models["lm"], prompt="good " * 300, max_tokens=16)
    assert excinfo.value.code == "context_length_exceeded" and "256" in excinfo.value.message
    # classification prompts are truncated like in training, never refused for length
    assert client.completions.create(model=models["classifier"], prompt="good " * 300, max_tokens=1).choices
    for kwargs, param in [({"logit_bias": {"1": 5}}, "logit_bias"), ({"presence_penalty": 0.5}, "presence_penalty"),
                          ({"best_of": 3}, "best_of"), ({"suffix": "x"}, "suffix"), ({"stop": list("abcde")}, "stop")]:
        with pytest.raises(openai.BadRequestError) as excinfo:
            client.completions.create(model=models["lm"], prompt="x", max_tokens=2, **kwargs)
        assert excinfo.value.param == param, kwargs


# -- chat -----------------------------------------------------------------------------------------

def test_chat_is_the_rendered_prompt_completed(client, models, fake_predictors):
    model = models["lm"]
    fake = fake_predictors.get(model)
    messages = [{"role": "developer", "content": "be nice"},
                {"role": "user", "content": [{"type": "text", "text": "great "}, {"type": "text", "text": "dress"}]}]
    response = client.chat.completions.create(model=model, messages=messages, max_tokens=4, temperature=0,
                                              logprobs=True, top_logprobs=2)
    choice = response.choices[0]
    prompt = "system: be nice\nuser: great dress\nassistant:"  # developer is sent as system
    assert response.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.message.content == fake.expected_text(prompt, 4)
    content = choice.logprobs.content
    assert "".join(t.token for t in content) == choice.message.content
    assert all(len(t.top_logprobs) == 2 and t.bytes == list(t.token.encode()) for t in content)
    assert response.usage.prompt_tokens == fake.count_tokens(prompt) + 1
    legacy = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0)
    assert legacy.choices[0].text == choice.message.content

    streamed = list(client.chat.completions.create(model=model, messages=messages, max_tokens=4, temperature=0,
                                                   stream=True, stream_options={"include_usage": True}))
    assert streamed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == choice.message.content
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "length"
    assert streamed[-1].usage.completion_tokens == 4

    # without max_tokens: as much as fits in the model's 256 positions, at most 256
    free = client.chat.completions.create(model=model, messages=messages, temperature=0)
    assert free.usage.prompt_tokens + free.usage.completion_tokens <= 256 + 1
    assert free.usage.completion_tokens == 256 - fake.count_tokens(prompt) - 2


def test_chat_errors(client, models):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=models["classifier"], messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.code == "chat_not_supported" and "chat template" in excinfo.value.message
    lm = models["lm"]
    cases = [
        (dict(messages=[{"role": "tool", "content": "x"}]), "messages[0].role"),
        # a tool call in the history was dropped from the prompt silently (QA)
        (dict(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "checking", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]), "messages[1].tool_calls"),
        (dict(messages=[{"role": "assistant", "content": "a", "function_call": {"name": "f", "arguments": "{}"}}]),
         "messages[0].function_call"),
        # a schema error names the message the same way (QA: it was 'messages.0.role')
        (dict(messages=[{"role": "user", "content": "x"}, {"role": "wizard", "content": "x"}]), "messages[1].role"),
        (dict(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
         "messages[0].content"),
        (dict(messages=[{"role": "user", "content": "x"}], tools=[{"type": "function", "function": {"name": "f"}}]),
         "tools"),
        (dict(messages=[{"role": "user", "content": "x"}], response_format={"type": "json_object"}), "response_format"),
        (dict(messages=[{"role": "user", "content": "x"}], top_logprobs=2), "top_logprobs"),
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as excinfo:
            client.chat.completions.create(model=lm, **kwargs)
        assert excinfo.value.param == param, kwargs
    # a previous answer's message passed back as it is (tool_calls, function_call, audio: null) is fine
    answer = client.chat.completions.create(model=lm, messages=[{"role": "user", "content": "x"}], max_tokens=2)
    history = [{"role": "user", "content": "x"}, answer.choices[0].message.model_dump(), {"role": "user", "content": "y"}]
    assert client.chat.completions.create(model=lm, messages=history, max_tokens=2).choices


# -- label scores ---------------------------------------------------------------------------------

def test_label_scores_give_every_label(http, models, fake_predictors):
    for kind in ("classifier", "lm-labels"):
        fake = fake_predictors.get(models[kind])
        response = http.post("/v1/labels/score", json={"model": models[kind], "prompt": [PROMPT, "bad"]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list" and body["model"] == models[kind]
        assert body["labels"] == LABELS and [d["index"] for d in body["data"]] == [0, 1]
        for item, prompt in zip(body["data"], [PROMPT, "bad"]):
            expected = fake.expected_scores(prompt)
            assert item["object"] == "label_distribution"
            assert list(item["logprobs"]) == LABELS
            assert list(item["logprobs"].values()) == pytest.approx(expected)
            assert item["label"] == LABELS[expected.index(max(expected))]
        assert body["usage"]["prompt_tokens"] == fake.count_tokens(PROMPT) + fake.count_tokens("bad")
    single = http.post("/v1/labels/score", json={"model": models["classifier"], "prompt": "x"}).json()
    assert len(single["data"]) == 1
    bad = http.post("/v1/labels/score", json={"model": models["lm"], "prompt": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "not_a_classifier"
    empty = http.post("/v1/labels/score", json={"model": models["classifier"], "prompt": []})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "prompt"
    missing = http.post("/v1/labels/score", json={"model": "nope:ft-personal-2024-01-01-00-00-00", "prompt": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


# -- models and the warm pool ---------------------------------------------------------------------
def test_models_list_and_retrieve(client, models):
    listed = {m.id: m for m in client.models.list()}
    for name in ("minilm-l6", "smollm2-135m", "ada", "babbage", "curie", "davinci"):
        assert name in listed
    for model_id in models.values():
        assert listed[model_id].owned_by == "user-personal"
    clf = client.models.retrieve(models["classifier"])
    assert clf.id == models["classifier"] and clf.object == "model"
    assert client.models.retrieve("ada").owned_by == "tunelab"
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("minilm-l6")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model:ft-personal-2024-01-01-00-00-00")


def test_warm_pool_evicts_least_recently_used(store, models):
    from tunelab.server import create_app

    app = create_app(store, max_loaded_models=1, isolate_models=False)
    oa, http = make_client(app)
    with http:
        oa.completions.create(model=models["classifier"], prompt="x", max_tokens=1)
        assert app.state.tunelab.pool.loaded() == [models["classifier"]]
        oa.completions.create(model=models["lm-labels"], prompt="x", max_tokens=1)
        assert app.state.tunelab.pool.loaded() == [models["lm-labels"]]


def test_delete_unloads_and_forgets_the_model(client, http, models, store):
    model = models["classifier"]
    client.completions.create(model=model, prompt="x", max_tokens=1)
    assert model in http.get("/v1/tunelab/stats").json()["loaded_models"]
    assert client.models.delete(model).deleted
    assert http.get("/v1/tunelab/stats").json()["loaded_models"] == []
    assert store.find_model(model) is None
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=model, prompt="x", max_tokens=1)
    with pytest.raises(openai.NotFoundError):
        client.models.delete(model)


def test_a_model_being_continued_cannot_be_deleted(client, models, store):
    store.create_job(model=models["classifier"], base_model="enc", method="classifier", training_file="file-x",
                     validation_file=None, hyperparams={}, options={}, seed=0, parent_model=models["classifier"])
    with pytest.raises(openai.ConflictError) as excinfo:
        client.models.delete(models["classifier"])
    assert excinfo.value.code == "model_in_use"


def test_a_model_is_loaded_once_for_concurrent_first_requests(client, models, fake_predictors):
    import concurrent.futures

    model = models["classifier"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: client.completions.create(model=model, prompt=PROMPT, max_tokens=1,
                                                                  temperature=0).choices[0].text, range(8)))
    assert len(set(texts)) == 1
    assert fake_predictors.loads.count(model) == 1


def test_stream_options_without_stream_is_refused(client, models):
    """QA: stream_options on a request that does not stream was silently ignored; OpenAI answers 400."""
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.completions.create(model=models["lm"], prompt="good", max_tokens=2,
                                  stream_options={"include_usage": True})
    assert excinfo.value.param == "stream_options"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=models["lm"], messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=2, stream=False, stream_options={"include_usage": True})
    assert excinfo.value.param == "stream_options"
