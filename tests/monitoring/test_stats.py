"""The statistics of `tunelab monitor` on made-up arrays, where the right answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunelab.errors import InvalidInputError
from tunelab.monitoring import stats as S

STARS = [" 1", " 2", " 3", " 4", " 5"]


def test_normalise_and_temperature():
    p = S.normalise([[0.2, 0.2, 0.0], [0.0, 0.0, 0.0]])
    assert p[0].tolist() == [0.5, 0.5, 0.0] and np.allclose(p[1], 1 / 3)
    probs = np.array([[0.7, 0.2, 0.1]])
    assert np.allclose(S.apply_temperature(probs, 1.0), probs)
    hot = S.apply_temperature(probs, 2.0)
    assert hot[0, 0] < 0.7 and hot.argmax() == 0 and math.isclose(hot.sum(), 1.0)
    with pytest.raises(InvalidInputError):
        S.apply_temperature(probs, 0)


def test_fit_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5)) * 2
    true_p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    gold = np.array([rng.choice(5, p=row) for row in true_p])
    overconfident = S.apply_temperature(true_p, 0.5)  # what a model trained too long reports
    assert S.fit_temperature(overconfident, gold) == pytest.approx(2.0, rel=0.1)


def test_top1_and_margin():
    top1, margin = S.top1_and_margin(np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2]]))
    assert top1.tolist() == [0.5, 0.4] and margin == pytest.approx([0.2, 0.0])


def test_label_drift_same_and_different():
    ref = [100, 200, 300, 200, 200]
    same = S.label_drift([10, 20, 30, 20, 20], ref)
    assert same["p_value"] > 0.5 and same["js_distance"] < 1e-9
    other = S.label_drift([80, 5, 5, 5, 5], ref)
    assert other["p_value"] < 1e-6 and other["js_distance"] > 0.4
    # a label the reference never predicted does not make the statistic infinite
    assert math.isfinite(S.label_drift([5, 5, 0, 0, 1], [10, 0, 10, 10, 10])["chi2"])
    assert S.label_drift([0, 0, 0, 0, 0], ref)["p_value"] is None


def test_label_drift_counts_the_reference_as_a_sample():
    """28 skewed categories, a 400-row reference and windows of 500 drawn from the same
    distribution: the test must not alarm on noise (goodness of fit to the reference's shares taken
    as exact gave p < 0.01 in most windows), and must still see a real shift."""
    rng = np.random.default_rng(0)
    share = np.geomspace(1, 0.005, 28)
    share /= share.sum()
    p_same = [S.label_drift(rng.multinomial(500, share), rng.multinomial(400, share))["p_value"] for _ in range(200)]
    assert np.mean(np.array(p_same) < 0.01) <= 0.03
    shifted = share.copy()
    shifted[[3, 5]] *= 4
    shifted /= shifted.sum()
    p_shift = [S.label_drift(rng.multinomial(500, shifted), rng.multinomial(400, share))["p_value"] for _ in range(50)]
    assert np.mean(np.array(p_shift) < 0.01) >= 0.9


def test_confidence_drift():
    rng = np.random.default_rng(1)
    ref = rng.beta(5, 2, 2000)
    assert S.confidence_drift(rng.beta(5, 2, 500), ref)["p_value"] > 0.01
    shifted = S.confidence_drift(rng.beta(2, 2, 500), ref)
    assert shifted["p_value"] < 1e-6 and shifted["ks"] > 0.2 and shifted["window_mean"] < shifted["reference_mean"]


def test_text_drift_tells_topics_apart_and_not_samples():
    rng = np.random.default_rng(2)
    clothes = "dress fits small large fabric color soft comfortable size length waist".split()
    films = "movie plot actor scene director script film cast story screen".split()

    def texts(words, n):
        return [" ".join(rng.choice(words, 8)) for _ in range(n)]

    ref = texts(clothes, 400)
    same = S.text_drift(ref, texts(clothes, 200), seed=0)
    assert same["auc"] < 0.65 and same["n_window"] == 200
    other = S.text_drift(ref, texts(films, 200), seed=0)
    assert other["auc"] > 0.95
    assert all(any(w in ex["text"] for w in films) for ex in other["examples"])
    assert set(other["terms"][:3]) <= set(films)
    assert S.text_drift(ref, texts(films, 5))["auc"] is None  # too few to tell
    # a window of a few prompts sent again and again shows each telling prompt once
    repeated = S.text_drift(ref, texts(films, 4) * 50, seed=0)
    assert len(repeated["examples"]) == len({ex["text"] for ex in repeated["examples"]}) == 4


def test_quality_flags():
    assert S.is_empty("") and S.is_empty("   \n\n###\n\n") and not S.is_empty("ok\n\n###\n\n")
    assert S.is_empty("...\n\n###\n\n") and not S.is_empty("5\n\n###\n\n")
    emoji = "\U0001F60D\U0001F60D\U0001F44D\n\n###\n\n"  # a review of emoji only: content, but not text
    assert not S.is_empty(emoji) and S.is_non_text(emoji)
    assert not S.is_non_text("Lovely dress, runs small!\n\n###\n\n")
    assert not S.is_non_text("ok\n\n###\n\n")  # the separator is not held against a short prompt
    assert S.is_non_text("3.1415 2.7182 1.4142\n\n###\n\n") and S.is_non_text('{"a": [1, 2, 3]}')
    assert S.is_non_text("caf\ufffd au lait") and S.is_non_text("bell\x07")
    assert S.prompt_digest(" a ") == S.prompt_digest("a") != S.prompt_digest("b")
    q = S.data_quality(empty=[True, False, False, None], non_text=[False] * 4, truncated=[None] * 4,
                       digests=["x", "y", "x", None])
    assert q["empty"] == pytest.approx(1 / 3) and q["truncated"] is None and q["duplicates"] == pytest.approx(1 / 3)


def test_expected_performance_is_exact_for_calibrated_probabilities():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(5) * 0.7, size=20000)
    gold = np.array([rng.choice(5, p=row) for row in p])  # labels drawn from the model's own belief
    pred = p.argmax(1)
    expected = S.expected_performance(p, STARS)
    realized = S.realized_performance([STARS[i] for i in pred], [STARS[i] for i in gold], STARS)
    for key in ("accuracy", "good_vs_bad_accuracy", "one_off_accuracy"):
        assert expected[key] == pytest.approx(realized[key], abs=0.01), key


def test_expected_good_vs_bad_and_one_off_by_hand():
    p = np.array([[0.1, 0.1, 0.1, 0.3, 0.4]])  # predicts 5: good side is 4-5 (0.7), within one is 4-5 (0.7)
    e = S.expected_performance(p, STARS)
    assert e["accuracy"] == pytest.approx(0.4)
    assert e["good_vs_bad_accuracy"] == pytest.approx(0.7) and e["one_off_accuracy"] == pytest.approx(0.7)
    cats = S.expected_performance(np.array([[0.6, 0.4]]), [" cat", " dog"])
    assert cats["accuracy"] == pytest.approx(0.6) and cats["good_vs_bad_accuracy"] is None
    r = S.realized_performance([" 5", " 4", " 1"], [" 4", " 4", " 3"], STARS)
    assert r["accuracy"] == pytest.approx(1 / 3) and r["good_vs_bad_accuracy"] == 1.0  # 1 and 3 are both bad
    assert r["one_off_accuracy"] == pytest.approx(2 / 3)


def test_windows():
    assert S.WindowSpec.parse("1d") == S.WindowSpec("time", 86400)
    assert S.WindowSpec.parse("500") == S.WindowSpec("count", 500)
    assert S.WindowSpec.parse("90m").describe() == "90m" and S.WindowSpec.parse("500").describe() == "500 predictions"
    for bad in ("soon", "0", "-1d", "2.5"):
        with pytest.raises(InvalidInputError):
            S.WindowSpec.parse(bad)
    times = [0, 10, 3600, 3601, 3 * 3600 + 5]
    assert S.split_windows(times, S.WindowSpec.parse("1h")) == [(0, 2), (2, 4), (4, 5)]
    assert S.split_windows(times, S.WindowSpec.parse("2")) == [(0, 2), (2, 4), (4, 5)]
    assert S.split_windows([], S.WindowSpec.parse("1h")) == []
