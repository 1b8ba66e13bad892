"""Label scoring and the Predictor on tiny random-weight models (real forward passes, no training):
distributions are normalized, independent of batching and padding, and what completions report."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.tiny_models import LABELS
from tunelab.errors import InvalidInputError
from tunelab.inference.scoring import score_labels
from tunelab.store import Store

PROMPTS = ["great good love perfect\n\n###\n\n", "bad", "the dress fits small but the fabric is poor quality\n\n###\n\n",
           "okay", "never again would buy\n\n###\n\n"]


@pytest.fixture(scope="module")
def loaded(tiny_models):
    """(model, tokenizer, meta) of each untrained fine-tuned folder, loaded once."""
    from tunelab.models.loading import load_fine_tuned

    return {kind: load_fine_tuned(folder) for kind, folder in tiny_models.finetuned().items()}


@pytest.fixture
def predictors(tiny_models, tunelab_home):
    from tunelab.inference.predictor import load_predictor

    store = Store()
    ids = {kind: tiny_models.register(store, kind) for kind in ("classifier", "lm", "lm-labels")}
    return {kind: load_predictor(model_id, store) for kind, model_id in ids.items()}


def test_classifier_rows_are_distributions(loaded):
    model, tokenizer, _ = loaded["classifier"]
    logp = score_labels(model, tokenizer, "classifier", PROMPTS, LABELS)
    assert logp.shape == (len(PROMPTS), len(LABELS))
    assert np.all(logp <= 0)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(logp[0], logp[2])  # the prompt matters


def test_lm_label_rows_are_sub_distributions(loaded):
    model, tokenizer, _ = loaded["lm-labels"]
    logp = score_labels(model, tokenizer, "lm", PROMPTS, LABELS)
    assert logp.shape == (len(PROMPTS), len(LABELS))
    total = np.exp(logp).sum(axis=1)
    assert np.all(total > 0) and np.all(total <= 1 + 1e-6)  # other continuations hold the rest


# SDPA's masked CPU kernel gives left-padded rows ~4e-4 of numerical noise in log-space; attending
# to the padding (a mask bug) moves them by ~4e-2.
@pytest.mark.parametrize("kind,method,atol", [("classifier", "classifier", 1e-5), ("lm-labels", "lm", 2e-3)])
def test_scores_do_not_depend_on_batching_or_padding(loaded, kind, method, atol):
    model, tokenizer, _ = loaded[kind]
    together = score_labels(model, tokenizer, method, PROMPTS, LABELS, batch_size=32)
    one_by_one = np.vstack([score_labels(model, tokenizer, method, [p], LABELS, batch_size=1) for p in PROMPTS])
    np.testing.assert_allclose(together, one_by_one, atol=atol)
    reordered = score_labels(model, tokenizer, method, PROMPTS[::-1], LABELS, batch_size=2)
    np.testing.assert_allclose(reordered[::-1], together, atol=atol)


def test_progress_counts_every_prompt(loaded):
    model, tokenizer, _ = loaded["lm-labels"]
    seen = []
    score_labels(model, tokenizer, "lm", PROMPTS, LABELS, batch_size=2, progress=seen.append)
    assert sum(seen) == len(PROMPTS)


def test_label_completions_report_the_scores(predictors):
    for kind in ("classifier", "lm-labels"):
        predictor = predictors[kind]
        scores = predictor.score_labels(PROMPTS[:2])
        choices = predictor.complete(PROMPTS[:2], max_tokens=1, temperature=0, logprobs=5)
        for row, (choice,) in zip(scores, choices):
            assert choice.label_mode and choice.tokens == [choice.text]
            assert choice.text == LABELS[int(np.argmax(row))]
            assert choice.top_logprobs[0] == pytest.approx(dict(zip(LABELS, row.tolist())), abs=1e-6)
            assert list(choice.top_logprobs[0].values()) == sorted(choice.top_logprobs[0].values(), reverse=True)


def test_free_form_generation_is_greedy_and_honours_stop(predictors):
    predictor = predictors["lm"]
    (first,), = predictor.complete(["great good"], max_tokens=4, temperature=0, logprobs=2)
    (again,), = predictor.complete(["great good"], max_tokens=4, temperature=0, logprobs=2)
    assert first.text == again.text and first.token_logprobs == pytest.approx(again.token_logprobs)
    assert 0 < len(first.tokens) <= 4 and "".join(first.tokens) == first.text
    assert all(lp <= 0 for lp in first.token_logprobs) and all(len(t) <= 2 for t in first.top_logprobs)
    (echoed,), = predictor.complete(["great good"], max_tokens=4, temperature=0, echo=True)
    assert echoed.text == "great good" + first.text
    (sampled_a, sampled_b), = predictor.complete(["great good"], max_tokens=4, temperature=1.0, n=2, seed=5)
    (sampled_c, sampled_d), = predictor.complete(["great good"], max_tokens=4, temperature=1.0, n=2, seed=5)
    assert [sampled_a.text, sampled_b.text] == [sampled_c.text, sampled_d.text]


def test_scoring_errors(predictors):
    with pytest.raises(InvalidInputError, match="not a classification model"):
        predictors["lm"].score_labels(["x"])
    with pytest.raises(InvalidInputError, match="can only score its own labels"):
        predictors["classifier"].score_labels(["x"], labels=[" yes", " no"])
    # an lm model can score any label set it is given
    assert predictors["lm"].score_labels(["x"], labels=[" yes", " no"]).shape == (1, 2)
