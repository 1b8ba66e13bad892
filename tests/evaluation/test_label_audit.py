"""Label-set analysis: planted noise is found by confident learning on cross-validated TF-IDF
probabilities, duplicates and conflicts are reported, merges are suggested sensibly, and data that
cross-validation cannot score is refused."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tests.helpers.crash import die_after_first_write
from tunelab.data.builder import build_dataset
from tunelab.data.readers import Example, read_prompt_completion
from tunelab.errors import InvalidInputError
from tunelab.evaluation import label_audit as A
from tunelab.evaluation.label_report import find_label_issues, inspect_labels, recovered_share, write_issues


@pytest.fixture(scope="module")
def clothing_classes(tmp_path_factory):
    """4,000 training rows of the bundled clothing `Class Name`, its two one-example classes merged."""
    out = tmp_path_factory.mktemp("classes")
    build_dataset("clothing-reviews", out_dir=out, preset="clothing-class", train_size=4000, val_size=200,
                  test_size=200, merge={"Chemises": "Intimates", "Casual bottoms": "Pants"})
    return out


@pytest.mark.slow  # about 20 s: five TF-IDF fits on 4,000 rows
def test_planted_label_noise_is_recovered_in_the_top_k(clothing_classes, tmp_path):
    rows = read_prompt_completion(clothing_classes / "train.jsonl")
    labels = sorted({e.completion for e in rows})
    rng = random.Random(0)
    flipped = set(rng.sample(range(len(rows)), len(rows) // 20))  # 5 %
    noisy = [Example(e.prompt, rng.choice([l for l in labels if l != e.completion]) if i in flipped else e.completion,
                     e.line) for i, e in enumerate(rows)]
    path = tmp_path / "noisy.jsonl"
    path.write_text("".join(json.dumps({"prompt": e.prompt, "completion": e.completion}) + "\n" for e in noisy))

    train, probs, issues = find_label_issues(path)
    assert probs.source == "5-fold cross-validated TF-IDF + logistic regression"
    share = recovered_share(A.quality_ranking(train, probs), flipped)
    assert share >= 0.5, f"only {share:.0%} of {len(flipped)} planted flips in the top-k"
    # The issues list is ranked the same way and holds most of the flips.
    flipped_lines = {noisy[i].line for i in flipped}
    top = [i["line"] for i in issues[: len(flipped)]]
    assert len(set(top) & flipped_lines) / len(flipped) >= 0.5
    first = issues[0]
    assert set(first) == {"line", "prompt", "given", "suggested", "score", "suggested_probability"}
    assert first["given"] != first["suggested"] and first["suggested"] in labels
    assert [i["score"] for i in issues] == sorted(i["score"] for i in issues)

    files = write_issues(path, train, issues, tmp_path / "out", action="drop", limit=len(flipped))
    cleaned = read_prompt_completion(files["train"])
    assert len(cleaned) == len(train) - len(flipped)
    changes = [json.loads(line) for line in open(files["changes"])]
    assert len(changes) == len(flipped) and {c["action"] for c in changes} == {"dropped"}


def test_duplicates_and_conflicts():
    rows = {"train": [Example("Love this dress!\n\n###\n\n", " Dresses", 1),
                      Example("love this   dress!\n\n###\n\n", " Knits", 2),
                      Example("The fabric is soft and the fit is great, I wear it every weekend with jeans\n\n###\n\n",
                              " Knits", 3),
                      Example("same", " Knits", 4)],
            "test": [Example("The fabric is soft and the fit is great, I wear it every weekend with my jeans\n\n###\n\n",
                             " Knits", 5),
                     Example("same", " Knits", 6)]}
    found = A.duplicates(rows)
    assert [c["rows"] for c in found["conflicts"]] == [["train:1", "train:2"]]
    assert [d["rows"] for d in found["exact"]] == [["train:4", "test:6"]]
    assert [p["rows"] for p in found["near"]] == [["train:3", "test:5"]]


def test_suggested_merges_follow_the_confusion():
    counts = {"Blouses": 500, "Knits": 800, "Dresses": 1000, "Chemises": 3, "Jeans": 300}
    pairs = [{"a": "Blouses", "b": "Knits", "mutual": 0.3, "a_as_b": 0.35, "b_as_a": 0.25},
             {"a": "Chemises", "b": "Dresses", "mutual": 0.01, "a_as_b": 0.3, "b_as_a": 0.0},
             {"a": "Chemises", "b": "Knits", "mutual": 0.01, "a_as_b": 0.6, "b_as_a": 0.0},
             {"a": "Dresses", "b": "Jeans", "mutual": 0.02, "a_as_b": 0.01, "b_as_a": 0.05}]
    assert A.suggest_merges(pairs, counts) == {"Blouses": "Knits", "Chemises": "Knits"}
    # A rare class needs the evidence of at least two rows and a fifth of them (QA: 1 of 14
    # video_games rows predicted as pet_products suggested merging the two)
    rare = {"home": 900, "pet_products": 300, "video_games": 14, "camera": 5}
    stray = [{"a": "pet_products", "b": "video_games", "mutual": 0.003, "a_as_b": 0.0, "b_as_a": 1 / 14},
             {"a": "camera", "b": "home", "mutual": 0.001, "a_as_b": 0.2, "b_as_a": 0.0}]
    assert A.suggest_merges(stray, rare) == {}
    assert A.suggest_merges([stray[0], {**stray[1], "a_as_b": 0.4}], rare) == {"camera": "home"}
    # Never down to one class.
    assert len(set(A.suggest_merges([{**pairs[0], "mutual": 0.9}], {"Blouses": 5, "Knits": 5}).values())) <= 1
    assert A.suggest_merges([{**pairs[0], "mutual": 0.9}], {"Blouses": 5, "Knits": 5}) == {}


def test_inspect_report(clothing_classes):
    report = inspect_labels(clothing_classes / "train.jsonl", valid_path=clothing_classes / "valid.jsonl",
                            confusion=False)
    counts = report["counts"]["train"]
    assert sum(counts.values()) == 4000 and report["imbalance_ratio"] == max(counts.values()) / min(counts.values())
    assert report["rare"] == {label: n for label, n in counts.items() if n < 20} and report["rare"]
    assert abs(sum(report["shares"]["valid"].values()) - 1) < 1e-9


@pytest.mark.parametrize("completions, message", [
    ([" a"] * 6, "single class"),
    ([" a", " a", " b", " b", " c"], "single example: ' c'|single example: 'c'"),
])
def test_data_that_cannot_be_cross_validated_is_refused(completions, message):
    with pytest.raises(InvalidInputError, match=message):
        A.check_learnable(completions, folds=5, source="train.jsonl")


def test_model_probabilities_follow_the_data_labels():
    class Fake:
        model_id, labels = "ft-x", [" b", " a"]

        def score_labels(self, prompts, batch_size=32):
            return np.log(np.tile([0.8, 0.2], (len(prompts), 1)))

    probs = A.model_probs(Fake(), ["p", "q"], ["a", "b"])
    assert np.allclose(probs.probs, [[0.2, 0.8], [0.2, 0.8]])
    with pytest.raises(InvalidInputError, match="never learned"):
        A.model_probs(Fake(), ["p"], ["a", "c"])


def test_a_one_example_class_is_scored_by_a_model_without_cross_validation(tmp_path, monkeypatch):
    completions = [" a"] * 5 + [" b"] * 5 + [" c"]
    assert A.check_learnable(completions, folds=5, source="train.jsonl", cross_validated=False) == ["a", "b", "c"]
    with pytest.raises(InvalidInputError, match="single class"):
        A.check_learnable([" a"] * 6, folds=5, source="train.jsonl", cross_validated=False)

    class Fake:
        model_id, labels = "ft-x", [" a", " b", " c"]

        def score_labels(self, prompts, batch_size=32):
            # confident in the given label, except row 0 which looks like a "b"
            gold = [self.labels.index(c) for c in completions]
            probs = np.full((len(prompts), 3), 0.05)
            probs[np.arange(len(prompts)), gold] = 0.9
            probs[0] = [0.05, 0.9, 0.05]
            return np.log(probs)

    import tunelab.inference.predictor as P

    monkeypatch.setattr(P, "load_predictor", lambda model, store=None: Fake())
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"row {i}", "completion": c}) + "\n"
                            for i, c in enumerate(completions)))
    train, probs, issues = find_label_issues(path, model="ft-x")
    assert len(train) == 11 and probs.source == "scores of ft-x"
    assert [(i["line"], i["suggested"]) for i in issues] == [(1, " b")]
    # Cross-validated, the one-row class is left unscored instead of refusing the file (QA: the rarest
    # Amazon category of a --train-size sample has one row, and `labels issues` refused the file)
    train, probs, issues = find_label_issues(path)
    assert len(train) == 11 and probs.unscored == ["c"] and probs.probs.shape == (10, 2)
    assert all(i["given"] != " c" for i in issues)
    path.write_text("".join(json.dumps({"prompt": f"row {i}", "completion": c}) + "\n"
                            for i, c in enumerate([" a"] * 9 + [" b", " c"])))
    with pytest.raises(InvalidInputError, match="Cross-validation cannot score"):
        find_label_issues(path)  # one class left to score: nothing to confuse it with


def test_flagged_rows_of_a_rare_class_are_kept_unless_asked(tmp_path):
    """Cross-validated TF-IDF flags correct rows of a class it saw three times; dropping them would
    erase the class (QA: shoes 3 -> 1, watch 3 -> 1)."""
    from tunelab.evaluation.label_report import acted_on

    train = [Example(f"home {i}\n\n###\n\n", " home", i + 1) for i in range(30)]
    train += [Example(f"shoe {i}\n\n###\n\n", " shoes", 31 + i) for i in range(3)]
    issues = [{"line": 32, "given": " shoes", "suggested": " home", "score": 0.01},
              {"line": 2, "given": " home", "suggested": " shoes", "score": 0.02},
              {"line": 33, "given": " shoes", "suggested": " home", "score": 0.03}]
    done, kept = acted_on(train, issues)
    assert [i["line"] for i in done] == [2] and [i["line"] for i in kept] == [32, 33]
    assert [i["line"] for i in acted_on(train, issues, keep_rare=0)[0]] == [32, 2, 33]
    assert [i["line"] for i in acted_on(train, issues, limit=1)[1]] == [32]
    files = write_issues(tmp_path / "train.jsonl", train, issues, tmp_path / "out", action="drop")
    cleaned = read_prompt_completion(files["train"])
    assert sum(e.completion == " shoes" for e in cleaned) == 3 and len(cleaned) == 32
    assert len([json.loads(line) for line in open(files["issues"])]) == 3


def test_a_tiny_share_is_not_shown_as_zero():
    from tunelab.evaluation.label_report import summary_counts

    report = {"counts": {"train": {"home": 2499, "book": 1, "dvd": 0}}, "labels": ["book", "dvd", "home"],
              "shares": {"train": {"home": 0.9996, "book": 0.0004, "dvd": 0.0}}}
    assert [row[2] for row in summary_counts(report)] == ["100.0%", "0.04%", "0.0%"]


def test_a_drop_killed_midway_leaves_no_earlier_cleaned_file(tmp_path, monkeypatch):
    """--drop again into the same folder: killed before it writes its train.jsonl, the earlier run's
    cleaned file (and changes.jsonl) must not stay to be trained on as if it were this run's."""
    from tunelab.evaluation import label_report

    train = [Example(f"home {i}\n\n###\n\n", " home", i + 1) for i in range(30)]
    issues = [{"line": 2, "given": " home", "suggested": " shoes", "score": 0.02}]
    out = tmp_path / "out"
    write_issues(tmp_path / "train.jsonl", train, issues, out, action="drop")
    assert (out / "train.jsonl").exists() and (out / "changes.jsonl").exists()
    die_after_first_write(monkeypatch, label_report)
    with pytest.raises(KeyboardInterrupt):
        write_issues(tmp_path / "train.jsonl", train, [], out, action="drop")
    assert not (out / "train.jsonl").exists() and not (out / "changes.jsonl").exists()


def test_fewer_folds_than_asked_say_why():
    from tunelab.evaluation.label_audit import cross_validated_probs

    prompts = [f"home kitchen pan {i}" for i in range(12)] + ["shoe heel lace 1", "shoe heel lace 2"]
    completions = [" home"] * 12 + [" shoes"] * 2
    probs = cross_validated_probs(prompts, completions, [" home", " shoes"], folds=5)
    assert probs.source == ("2-fold cross-validated TF-IDF + logistic regression, 2 folds, not 5, as the rarest "
                            "scored class has 2 rows")


def test_near_duplicate_chinese_reviews_are_found_though_they_have_no_spaces():
    # Read as whole-clause words, two reviews that differ in one character shared no word at all.
    texts = ["这个锅质量非常好用起来很方便物流也很快包装完好无损值得购买",
             "这个锅质量非常好用起来特别方便物流也很快包装完好无损值得购买",
             "电池续航一般充满电只能用半天屏幕显示效果还不错"]
    texts += [f"第{i}次购买{'衣服裤子外套裙子'[i % 4]}{'红黄蓝绿'[i % 4]}色尺码{i}号" for i in range(40)]
    rows = [("train", Example(prompt=t + "\n\n###\n\n", completion=" 5", line=i + 1)) for i, t in enumerate(texts)]
    pairs = A._near_duplicates(rows, 0.9)
    assert [p["rows"] for p in pairs] == [["train:1", "train:2"]]


def test_cross_validation_reports_each_fold_and_matches_cross_val_predict():
    # The folds are fitted one at a time so that `labels inspect|issues` can show a bar (45-80 s of
    # silence on 29k Amazon reviews); the probabilities must stay cross_val_predict's, zeros of a
    # class a fold never saw included.
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = random.Random(0)
    words = {" home": "pillow lamp rug", " kitchen": "pan pot knife", " watch": "band dial strap"}
    completions = [" home"] * 30 + [" kitchen"] * 20 + [" watch"] * 3
    prompts = [" ".join(rng.choice((words[c] + " great bad").split()) for _ in range(5)) for c in completions]
    labels = [" home", " kitchen", " watch"]
    done = []
    probs = A.cross_validated_probs(prompts, completions, labels, folds=5, seed=0, progress=done.append)
    assert done == [1, 1, 1]  # the rarest class has 3 rows: 3 folds
    expected = cross_val_predict(A.audit_pipeline(0), prompts, A.label_index(completions, labels),
                                 cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0), method="predict_proba")
    np.testing.assert_allclose(probs.probs, A._normalised(expected))


def test_near_duplicate_search_reports_the_rows_it_has_compared():
    rows = [("train", Example(prompt=f"review number {i} of a lamp\n\n###\n\n", completion=" home", line=i + 1))
            for i in range(45)]
    done = []
    A._near_duplicates(rows, 0.9, block=20, progress=done.append)
    assert done == [20, 20, 5]
