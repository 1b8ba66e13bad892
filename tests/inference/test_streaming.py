"""Streaming hands each token over while the model generates, not after: checked by counting the
model's forward passes at the moment each token arrives."""

from __future__ import annotations

import pytest

from tunelab.inference.predictor import load_predictor


@pytest.fixture
def predictor(store, tiny_models):
    return load_predictor(tiny_models.register(store, "lm"), store)


@pytest.fixture
def store(tunelab_home):
    from tunelab.store import Store

    return Store()


def test_tokens_arrive_as_they_are_generated(predictor, monkeypatch):
    calls = []
    forward = predictor.model.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(predictor.model, "forward", counting)
    seen = []
    final = predictor.stream("great good", lambda piece: seen.append((piece, len(calls))), max_tokens=12,
                             temperature=0, logprobs=3)
    assert len(seen) == final.completion_tokens == 12 and len(calls) >= 12
    # the k-th token was handed over after k forward passes, long before the last one
    assert [passes for _, passes in seen] == list(range(1, 13))
    (whole,), = predictor.complete(["great good"], max_tokens=12, temperature=0, logprobs=3)
    assert "".join(p.text for p, _ in seen) == final.text == whole.text
    assert [p.logprob for p, _ in seen] == pytest.approx(whole.token_logprobs, abs=1e-5)
    assert all(len(p.top) <= 3 for p, _ in seen)
    assert [p.offset for p, _ in seen] == whole.text_offset


def test_stop_sequences_and_stopping_early(predictor):
    (whole,), = predictor.complete(["great good"], max_tokens=8, temperature=0)
    stop = whole.tokens[3]
    pieces = []
    final = predictor.stream("great good", pieces.append, max_tokens=8, temperature=0, stop=[stop])
    (expected,), = predictor.complete(["great good"], max_tokens=8, temperature=0, stop=[stop])
    assert final.text == expected.text == "".join(p.text for p in pieces) and final.finish_reason == "stop"
    assert stop not in final.text
    got = []
    early = predictor.stream("great good", lambda piece: got.append(piece) or len(got) < 2, max_tokens=8,
                             temperature=0)
    assert len(got) == 2 and early.completion_tokens == 2  # the caller went away: generation stopped


@pytest.mark.slow  # starts a model process
def test_streaming_from_a_model_process(store, tiny_models):
    from tunelab.server.model_process import ProcessPredictor

    model_id = tiny_models.register(store, "lm")
    remote = ProcessPredictor(model_id, store, threads=1)
    try:
        pieces = []
        final = remote.stream("great good", pieces.append, max_tokens=5, temperature=0, logprobs=2)
        (whole,), = remote.complete(["great good"], max_tokens=5, temperature=0, logprobs=2)
        assert [p.text for p in pieces] == whole.tokens and final.text == whole.text
        seen = []
        dropped = remote.stream("great good", lambda piece: (seen.append(piece), False)[1], max_tokens=5, temperature=0)
        assert len(seen) == 1 and dropped.text == whole.text  # the rest is read and dropped...
        assert remote.complete(["great"], max_tokens=2, temperature=0)  # ...so the pipe stays in step
    finally:
        remote.close()
