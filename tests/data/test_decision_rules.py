"""Decision rules for ordinal labels (tunelab.data.labels.decide): the median minimises the expected
absolute error where argmax does not; good_vs_bad answers on the more probable side of the cut."""

from __future__ import annotations

import numpy as np
import pytest

from tunelab.data.labels import decide
from tunelab.errors import InvalidInputError

STARS = [" 1", " 2", " 3", " 4", " 5"]


def test_median_differs_from_argmax_on_a_bimodal_distribution():
    # 1 star is the single most probable answer, but most of the mass is on 4-5 stars
    p = np.array([[0.40, 0.02, 0.03, 0.25, 0.30]])
    assert STARS[decide(p, STARS, "argmax")[0]] == " 1"
    assert STARS[decide(p, STARS, "median")[0]] == " 4"
    assert STARS[decide(p, STARS, "good_vs_bad")[0]] == " 5"  # 55 % good, then the likeliest good label
    values = np.arange(1, 6)

    def expected_abs_error(pred):
        return float((p[0] * np.abs(values - pred)).sum())

    assert expected_abs_error(4) < expected_abs_error(1)
    assert min(range(1, 6), key=expected_abs_error) == 4


def test_rules_agree_on_a_peaked_distribution_and_accept_unnormalised_rows():
    p = np.array([[0.01, 0.02, 0.9, 0.05, 0.02], [0.1, 0.1, 0.1, 0.3, 0.4]]) * 0.7  # an lm's mass < 1
    assert list(decide(p, STARS, "argmax")) == [2, 4]
    assert list(decide(p, STARS, "median")) == [2, 3]


def test_rules_follow_label_values_not_their_order():
    shuffled = [" 5", " 1", " 4", " 2", " 3"]
    p = np.array([[0.30, 0.40, 0.25, 0.02, 0.03]])  # same distribution as above, other order
    assert shuffled[decide(p, shuffled, "median")[0]] == " 4"


def test_non_ordinal_labels_only_have_argmax():
    labels = [" dress", " shirt"]
    assert list(decide(np.array([[0.3, 0.7]]), labels)) == [1]
    with pytest.raises(InvalidInputError):
        decide(np.array([[0.3, 0.7]]), labels, "median")
    with pytest.raises(InvalidInputError):
        decide(np.array([[0.3, 0.7]]), STARS[:2], "mode")
