"""`tunelab serve --decision median`: classification models with ordinal labels answer
/v1/completions with the median of their (calibrated) label distribution; the logprobs are the
same as with argmax."""

from __future__ import annotations

import numpy as np
import pytest

from tests.server.conftest import make_client
from tunelab.data.labels import decide
from tunelab.errors import InvalidInputError

PROMPTS = [f"{a} {b} {c}\n\n###\n\n" for a, b, c in
           [("great", "awful", "fine"), ("love", "hate", "okay"), ("poor", "perfect", "dress"),
            ("bad", "good", "quality"), ("terrible", "great", "fits"), ("never", "always", "return")]]


def _answers(app, model_id):
    client, _ = make_client(app)
    res = client.completions.create(model=model_id, prompt=PROMPTS, max_tokens=1, temperature=0, logprobs=5)
    return [c.text for c in sorted(res.choices, key=lambda c: c.index)], res


def test_median_rule_answers_with_the_median_label(store, real_models):
    from tunelab.server import create_app

    model_id = real_models["classifier"]
    argmax_text, argmax_res = _answers(create_app(store, isolate_models=False), model_id)
    median_text, median_res = _answers(create_app(store, isolate_models=False, decision="median"), model_id)
    labels = store.find_model(model_id).labels
    for i, choice in enumerate(sorted(median_res.choices, key=lambda c: c.index)):
        probs = np.exp([choice.logprobs.top_logprobs[0][label] for label in labels])
        assert median_text[i] == labels[decide(probs, labels, "median")[0]]
        assert argmax_text[i] == labels[int(np.argmax(probs))]
    # the distributions do not depend on the rule
    first = sorted(argmax_res.choices, key=lambda c: c.index)[0].logprobs.top_logprobs[0]
    assert first == sorted(median_res.choices, key=lambda c: c.index)[0].logprobs.top_logprobs[0]


def test_unknown_rule_is_refused(store):
    from tunelab.server import create_app

    with pytest.raises(InvalidInputError):
        create_app(store, isolate_models=False, decision="mode")
