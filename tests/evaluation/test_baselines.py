"""Majority-class and TF-IDF + logistic regression baselines."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from tunelab.errors import InvalidInputError
from tunelab.evaluation.baselines import majority_baseline, run_baselines, tfidf_baseline, tfidf_pipeline

LABELS = [" 1", " 2", " 3"]
WORDS = {" 1": "awful terrible bad", " 2": "okay fine so so", " 3": "great love perfect"}


def _rows(n, offset=0):
    prompts, gold = [], []
    for i in range(n):
        label = LABELS[(i + offset) % 3]
        words = WORDS[label].split()
        prompts.append(" ".join(words[(i + j) % len(words)] for j in range(3)) + "\n\n###\n\n")
        gold.append(label)
    return prompts, gold


def test_majority_predicts_the_most_frequent_training_label():
    b = majority_baseline([" 2", " 3", " 3", " 1"], 4, LABELS)
    assert b.pred == [" 3"] * 4
    assert b.probs.shape == (4, 3)
    np.testing.assert_allclose(b.probs[0], [0.25, 0.25, 0.5])


def test_majority_tie_goes_to_the_first_label():
    assert majority_baseline([" 3", " 1"], 1, LABELS).pred == [" 1"]


def test_pipeline_is_tfidf_1_2_grams_sublinear_plus_logistic_regression():
    pipe = tfidf_pipeline()
    tfidf, clf = pipe.named_steps["tfidf"], pipe.named_steps["clf"]
    assert isinstance(tfidf, TfidfVectorizer) and isinstance(clf, LogisticRegression)
    assert tfidf.ngram_range == (1, 2) and tfidf.sublinear_tf is True


def test_tfidf_learns_separable_words():
    train_p, train_g = _rows(30)
    test_p, test_g = _rows(9, offset=1)
    b = tfidf_baseline(train_p, train_g, test_p, LABELS)
    assert b.pred == test_g
    np.testing.assert_allclose(b.probs.sum(axis=1), 1.0)


def test_tfidf_with_a_single_training_class():
    b = tfidf_baseline(["a b", "c d"], [" 2", " 2"], ["x"], LABELS)
    assert b.pred == [" 2"]
    assert b.probs.tolist() == [[0.0, 1.0, 0.0]]


def test_tfidf_empty_vocabulary_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="TF-IDF"):
        tfidf_baseline(["!", "?"], [" 1", " 2"], ["x"], LABELS)


def test_run_baselines_reports_headline_metrics():
    train_p, train_g = _rows(30)
    test_p, test_g = _rows(9, offset=1)
    out = run_baselines(train_p, train_g, test_p, test_g, LABELS)
    assert set(out) == {"majority", "tfidf"}
    assert out["tfidf"]["accuracy"] == 1.0
    assert out["majority"]["accuracy"] == pytest.approx(3 / 9)
    for name in out:
        for key in ("accuracy", "macro_f1", "good_vs_bad_accuracy", "one_off_accuracy", "mae", "ece"):
            assert key in out[name]
        assert out[name]["n_train"] == 30


def test_run_baselines_categorical_labels_have_no_ordinal_entries():
    labels = ["neg", "pos"]
    out = run_baselines(["bad", "awful", "great", "love"], ["neg", "neg", "pos", "pos"], ["bad", "love"],
                        ["neg", "pos"], labels)
    assert "good_vs_bad_accuracy" not in out["tfidf"]
    assert out["majority"]["label"] == "neg"


def test_run_baselines_rejects_unknown_training_labels():
    with pytest.raises(InvalidInputError, match="outside"):
        run_baselines(["a", "b"], [" 1", " 9"], ["a"], [" 1"], LABELS)


def _unspaced_reviews(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Chinese-like reviews: no spaces, so every review is one run of characters that no other
    review repeats, while the label shows in single characters (好 in good ones, 差 in bad ones)."""
    rng = np.random.default_rng(seed)
    filler = list("的一是在不了有人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严")
    texts, labels = [], []
    for i in range(n):
        label = "good" if i % 2 else "bad"
        chars = list(rng.choice(filler, size=12))
        chars.insert(int(rng.integers(0, 12)), "好" if label == "good" else "差")
        texts.append("".join(chars) + "。")
        labels.append(label)
    return texts, labels


def test_tfidf_reads_chinese_without_spaces_character_by_character():
    # scikit-learn's default word pattern made each unspaced review one unrepeated word: chance level.
    train, train_gold = _unspaced_reviews(200, 0)
    test, test_gold = _unspaced_reviews(100, 1)
    pred = tfidf_baseline(train, train_gold, test, ["bad", "good"])
    assert np.mean(np.array(pred.pred) == np.array(test_gold)) >= 0.9
    english = "the dress fits well and the fabric is soft, don't return it"
    assert tfidf_pipeline()[0].build_analyzer()(english) == TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()(english)
