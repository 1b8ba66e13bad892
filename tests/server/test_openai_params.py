"""No silent drops: parameters of the pinned `openai` client that tunelab honours (checked in their
effect), accepts as harmless, or refuses with a 400 naming them. The compatibility table itself is
checked against the code in test_compatibility_table.py."""

from __future__ import annotations

import math

import openai
import pytest
from sqlalchemy import text

from tests.server.conftest import LABELS, PROMPT
from tests.server.test_prediction_log import rows


# -- files: expires_after ---------------------------------------------------------------------------

def test_files_expires_after_is_honoured(client, store, training_files):
    train, _ = training_files
    kept = client.files.create(file=open(train, "rb"), purpose="fine-tune")
    expiring = client.files.create(file=open(train, "rb"), purpose="fine-tune",
                                   expires_after={"anchor": "created_at", "seconds": 3600})
    assert kept.expires_at is None and expiring.expires_at == expiring.created_at + 3600
    assert client.files.retrieve(expiring.id).expires_at == expiring.expires_at
    for bad in ({"anchor": "created_at", "seconds": 10}, {"anchor": "last_active_at", "seconds": 3600}):
        with pytest.raises(openai.BadRequestError) as excinfo:
            client.files.create(file=open(train, "rb"), purpose="fine-tune", expires_after=bad)
        assert excinfo.value.param == "expires_after"
    with store.engine.begin() as conn:  # an hour later
        conn.execute(text("UPDATE files SET expires_at = expires_at - 3601 WHERE id = :id"), {"id": expiring.id})
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(expiring.id)
    assert [f.id for f in client.files.list()] == [kept.id]


# -- chat: accepted as harmless, tool_choice, the prediction log ------------------------------------

def test_chat_accepts_harmless_parameters(app, client, models):
    chat = client.chat.completions.create(
        model=models["lm-labels"], messages=[{"role": "user", "content": "hi"}], parallel_tool_calls=False,
        service_tier="auto", prompt_cache_key="reviews-v1", safety_identifier="hashed-user-9", tool_choice="none",
        metadata={"page": "reviews"}, store=True)
    assert chat.choices[0].message.content and chat.service_tier == "default"
    (row,) = rows(app)
    assert row.response_id == chat.id and row.end_user == "hashed-user-9" and row.metadata == {"page": "reviews"}
    client.chat.completions.create(model=models["lm-labels"], messages=[{"role": "user", "content": "hi"}],
                                   store=False)
    assert len(rows(app)) == 1  # store=false: not kept


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "lookup"}}])
def test_chat_tool_choice_that_needs_a_tool_is_refused(client, models, tool_choice):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=models["lm-labels"], messages=[{"role": "user", "content": "hi"}],
                                       tool_choice=tool_choice)
    assert excinfo.value.param == "tool_choice"


# -- classification models: max_tokens, stop and top_p are honoured ---------------------------------

def test_classifier_honours_stop_and_top_p(client, real_models):
    model = real_models["classifier"]
    greedy = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=0, logprobs=5)
    label = greedy.choices[0].text
    top = greedy.choices[0].logprobs.top_logprobs[0]
    assert label == max(top, key=top.get)
    stopped = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=0, stop=[label])
    assert stopped.choices[0].text == "" and stopped.choices[0].finish_reason == "stop"
    assert stopped.usage.completion_tokens == 0
    # top_p keeps the smallest set of labels holding that much probability: here only the first
    nucleus = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=1.0, top_p=1e-6, n=12,
                                        seed=3)
    assert {c.text for c in nucleus.choices} == {label}
    spread = client.completions.create(model=model, prompt=PROMPT, max_tokens=5, temperature=2.0, n=40, seed=3)
    assert len({c.text for c in spread.choices}) > 1  # without it, other labels are drawn
    assert all(c.text in LABELS for c in spread.choices)  # a label is one token whatever max_tokens says


# -- completions scoring idioms --------------------------------------------------------------------

def test_echo_with_logprobs_returns_the_prompt_tokens(client, real_models):
    model = real_models["lm"]
    plain = client.completions.create(model=model, prompt="great good", max_tokens=3, temperature=0, logprobs=2)
    echoed = client.completions.create(model=model, prompt="great good", max_tokens=3, temperature=0, logprobs=2,
                                       echo=True)
    choice = echoed.choices[0]
    lp = choice.logprobs
    assert choice.text == "great good" + plain.choices[0].text
    n_prompt = len(lp.tokens) - len(plain.choices[0].logprobs.tokens)
    assert n_prompt >= 2 and "".join(lp.tokens[:n_prompt]).replace(" ", "") == "greatgood"
    assert lp.text_offset[0] == 0 and lp.text_offset[n_prompt] == len("great good")
    assert lp.tokens[n_prompt:] == plain.choices[0].logprobs.tokens
    assert all(v is None or v <= 0 for v in lp.token_logprobs)
    assert all(t is None or len(t) <= 2 for t in lp.top_logprobs)
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing predicts the first token


def test_max_tokens_zero_with_echo_scores_a_prompt(client, real_models):
    model = real_models["lm"]
    scored = client.completions.create(model=model, prompt=["great good love", "bad awful"], max_tokens=0, echo=True,
                                       logprobs=0)
    for choice, prompt in zip(scored.choices, ["great good love", "bad awful"]):
        assert choice.text == prompt and choice.finish_reason == "length"
        values = [v for v in choice.logprobs.token_logprobs if v is not None]
        assert values and all(v <= 0 and math.isfinite(v) for v in values)
    assert scored.usage.completion_tokens == 0 and scored.usage.prompt_tokens > 0
    # the same prompt scores the same, and a longer one scores lower in total
    again = client.completions.create(model=model, prompt="great good love", max_tokens=0, echo=True, logprobs=0)
    assert again.choices[0].logprobs.token_logprobs == scored.choices[0].logprobs.token_logprobs
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.completions.create(model=model, prompt="x", max_tokens=0)  # nothing to return without echo
    assert excinfo.value.param == "max_tokens"


@pytest.mark.parametrize("kwargs", [dict(prompt="", max_tokens=2), dict(prompt="", max_tokens=2, stream=True),
                                    dict(prompt="", max_tokens=0, echo=True, logprobs=1)])
def test_an_empty_prompt_is_refused_by_a_free_form_model(client, real_models, kwargs):
    """A prompt without a token crashed generation (a 500, and the connection dropped); it is a 400
    naming the prompt. A classifier still answers it (its tokenizer adds [CLS] and [SEP])."""
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.completions.create(model=real_models["lm"], **kwargs)
    assert excinfo.value.param == "prompt" and excinfo.value.code == "empty_prompt"
    assert "at least one token" in excinfo.value.message
    with pytest.raises(openai.BadRequestError) as batch:
        client.completions.create(model=real_models["lm"], prompt=["great", ""], max_tokens=1)
    assert batch.value.body["message"].startswith("prompt[1] is empty")
    assert client.completions.create(model=real_models["classifier"], prompt="", max_tokens=1).choices[0].text in LABELS


def test_token_id_prompts(client, real_models, store):
    from tunelab.models.loading import load_tokenizer

    model = real_models["lm"]
    tokenizer = load_tokenizer(store.get_model(model).path)
    ids = tokenizer("great good", add_special_tokens=False)["input_ids"]
    as_text = client.completions.create(model=model, prompt=tokenizer.decode(ids), max_tokens=3, temperature=0)
    as_ids = client.completions.create(model=model, prompt=ids, max_tokens=3, temperature=0)
    assert as_ids.choices[0].text == as_text.choices[0].text
    batch = client.completions.create(model=model, prompt=[ids, ids[:1]], max_tokens=2, temperature=0)
    assert len(batch.choices) == 2
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.completions.create(model=model, prompt=[10 ** 9], max_tokens=1)
    assert excinfo.value.param == "prompt" and "vocabulary" in excinfo.value.message


def test_streamed_completion_is_the_generated_tokens(app, client, real_models):
    model = real_models["lm"]
    whole = client.completions.create(model=model, prompt="great good", max_tokens=6, temperature=0, logprobs=2)
    stream = client.completions.create(model=model, prompt="great good", max_tokens=6, temperature=0, logprobs=2,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    texts = [c.choices[0].text for c in chunks if c.choices and c.choices[0].finish_reason is None]
    assert "".join(texts) == whole.choices[0].text
    assert texts == whole.choices[0].logprobs.tokens  # one chunk per token, each with its logprob
    tokens = [c.choices[0].logprobs.tokens[0] for c in chunks if c.choices and c.choices[0].logprobs]
    assert tokens == whole.choices[0].logprobs.tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    echoed = list(client.completions.create(model=model, prompt=["great", "good"], max_tokens=3, temperature=0,
                                            echo=True, n=2, stream=True))
    by_index: dict[int, str] = {}
    for c in echoed:
        by_index[c.choices[0].index] = by_index.get(c.choices[0].index, "") + c.choices[0].text
    assert sorted(by_index) == [0, 1, 2, 3] and by_index[0].startswith("great") and by_index[2].startswith("good")


def test_streamed_chat_is_the_generated_tokens(client, real_models):
    model = real_models["lm"]
    messages = [{"role": "user", "content": "great good"}]
    whole = client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0,
                                           logprobs=True, top_logprobs=2)
    chunks = list(client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0,
                                                 logprobs=True, top_logprobs=2, stream=True,
                                                 stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == whole.choices[0].message.content
    assert deltas == [t.token for t in whole.choices[0].logprobs.content]  # one chunk per token
    streamed = [c.choices[0].logprobs.content[0] for c in chunks if c.choices and c.choices[0].logprobs]
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in whole.choices[0].logprobs.content],
                                                          abs=1e-5)
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
