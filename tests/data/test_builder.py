"""The dataset builder as a library: prompt/label rules, stratified seeded splits, labels.json."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.helpers.crash import die_after_first_write
from tunelab.data.builder import DEFAULT_SEPARATOR, build_dataset, make_prompt, resolve_columns
from tunelab.errors import DataFileError, InvalidInputError


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def make_csv(tmp_path, counts: dict[str, int], name="data.csv"):
    """A CSV with `counts[label]` distinct texts per label."""
    import pandas as pd

    rows = [{"text": f"review {label} number {i}", "label": label} for label, n in counts.items() for i in range(n)]
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_make_prompt_joins_non_empty_fields():
    row = {"title": " Great ", "body": "Loved it.\nReally.", "empty": "", "none": None}
    expected = "Great\nLoved it.\nReally." + DEFAULT_SEPARATOR
    assert make_prompt(row, ["title", "empty", "none", "body", "absent"]) == expected
    assert make_prompt({"title": "", "body": None}, ["title", "body"]) == ""
    assert make_prompt({"age": 41}, ["age"], " ->") == "41 ->"


def test_resolve_columns_precedence(fixtures):
    csv = fixtures / "clothing_reviews_tiny.csv"
    assert resolve_columns(csv, preset="clothing-stars") == (["Title", "Review Text"], "Rating", "clothing-stars")
    assert resolve_columns(csv, preset="clothing-stars", label_column="Class Name")[1] == "Class Name"
    assert resolve_columns("clothing-reviews") == (["Title", "Review Text"], "Rating", "clothing-stars")
    assert resolve_columns("clothing-reviews", label_column="Department Name")[:2] == (
        ["Title", "Review Text"], "Department Name")
    with pytest.raises(InvalidInputError, match="Say which columns"):
        resolve_columns(csv, text_columns=["Title"])
    with pytest.raises(InvalidInputError, match="Unknown preset 'nope'"):
        resolve_columns(csv, preset="nope")


def test_missing_columns_name_the_tables_columns_and_the_presets_that_fit(fixtures):
    # Amazon's JSON lines given without a preset: the hint lists its columns and both presets
    with pytest.raises(InvalidInputError, match="Say which columns") as raised:
        resolve_columns(fixtures / "amazon_reviews_tiny.jsonl", label_column="product_category")
    hint = raised.value.hint
    assert "`review_body`" in hint and "`stars`" in hint
    assert "--preset amazon-stars or --preset amazon-category" in hint and "replace its columns" in hint
    with pytest.raises(InvalidInputError) as raised:
        resolve_columns(fixtures / "clothing_reviews_tiny.csv")
    assert "`Review Text`" in raised.value.hint and "--preset clothing-stars" in raised.value.hint


def test_a_release_folder_without_columns_gets_its_training_files_columns(fixtures, tmp_path):
    for part in ("train", "dev", "test"):
        (tmp_path / f"dataset_en_{part}.json").write_bytes((fixtures / "amazon_reviews_tiny.jsonl").read_bytes())
    with pytest.raises(InvalidInputError) as raised:
        resolve_columns(tmp_path)
    assert "`review_body`" in raised.value.hint and "--preset amazon-stars" in raised.value.hint


def test_stratified_split_on_a_larger_table(tmp_path):
    counts = {"a": 300, "b": 120, "c": 60, "d": 20}
    result = build_dataset(make_csv(tmp_path, counts), text_columns=["text"], label_column="label",
                           out_dir=tmp_path / "out", val_size=100, test_size=50)
    assert result.counts == {"train": 350, "valid": 100, "test": 50}
    total = sum(counts.values())
    for split, size in result.counts.items():
        for label, n in counts.items():
            assert abs(result.label_counts[split][label] - size * n / total) <= 1, (split, label)
    assert result.stratified and not result.notes


def test_train_size_caps_with_a_stratified_sample(tmp_path):
    result = build_dataset(make_csv(tmp_path, {"a": 300, "b": 100}), text_columns=["text"], label_column="label",
                           out_dir=tmp_path / "out", train_size=40)
    assert result.counts == {"train": 40, "valid": 40, "test": 40}
    assert result.label_counts["train"] == {"a": 30, "b": 10}
    bigger = build_dataset(make_csv(tmp_path, {"a": 30, "b": 10}), text_columns=["text"], label_column="label",
                           out_dir=tmp_path / "out2", train_size=10_000)
    assert bigger.counts["train"] == 32  # capped at what is there


def test_single_example_class_stays_in_train(tmp_path):
    result = build_dataset(make_csv(tmp_path, {"a": 30, "b": 30, "rare": 1}), text_columns=["text"],
                           label_column="label", out_dir=tmp_path / "out")
    assert result.label_counts["train"]["rare"] == 1
    assert result.stratified


def test_too_few_rows_for_stratification_is_noted(tmp_path):
    result = build_dataset(make_csv(tmp_path, {str(i): 4 for i in range(5)}), text_columns=["text"],
                           label_column="label", out_dir=tmp_path / "out", test_size=2, val_size=2)
    assert not result.stratified
    assert "not stratified" in result.notes[0]
    assert json.loads(result.paths["labels"].read_text())["stratified"] is False


def test_a_train_size_below_the_number_of_labels_is_noted_in_the_users_terms(tmp_path):
    # --train-size 20 over 31 Amazon categories noted sklearn's "The test_size = 20 should be greater
    # or equal to the number of classes = 31", naming an argument the user never gave.
    result = build_dataset(make_csv(tmp_path, {f"c{i}": 20 for i in range(8)}), text_columns=["text"],
                           label_column="label", out_dir=tmp_path / "out", train_size=5)
    (note,) = [n for n in result.notes if "not stratified" in n]
    assert note == "train: rows taken at random, not stratified (5 rows cannot hold one of each of the 8 labels)"
    assert "test_size" not in " ".join(result.notes)


def test_sizes_larger_than_the_data_are_an_error_and_write_nothing(tmp_path):
    with pytest.raises(InvalidInputError, match="Only 20 usable rows"):
        build_dataset(make_csv(tmp_path, {"a": 10, "b": 10}), text_columns=["text"], label_column="label",
                      out_dir=tmp_path / "out", test_size=10, val_size=10)
    assert not (tmp_path / "out").exists()


def test_labels_json_and_drop_reasons(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"t": "one", "y": 1}, {"t": "two", "y": 2.0}, {"t": "", "y": 1}, {"t": "three", "y": None},
            {"t": "one", "y": 2}] + [{"t": f"x{i}", "y": 1 + i % 2} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = build_dataset(path, text_columns=["t"], label_column="y", out_dir=tmp_path / "out", seed=7)
    meta = json.loads(result.paths["labels"].read_text())
    assert meta["labels"] == ["1", "2"] and meta["ordinal"] is True
    assert meta["dropped"] == {"empty_text": 1, "missing_label": 1, "duplicate_prompt": 1}
    assert meta["dropped_examples"]["duplicate_prompt"] == ["d.jsonl:5"]
    # the dropped repeat had another label: said in a note, as label noise, not only as a duplicate
    assert "1 dropped duplicate(s) had another label than the row kept (the first one wins): d.jsonl:5 ('2'; " \
           "kept d.jsonl:1, '1')" in result.notes
    assert "dropped 1 row(s) with no `y`: d.jsonl:4" in result.notes
    assert "dropped 1 row(s) with empty text: d.jsonl:3" in result.notes
    assert meta["seed"] == 7 and meta["shuffled"] is True and meta["separator"] == DEFAULT_SEPARATOR
    assert meta["text_columns"] == ["t"] and meta["label_column"] == "y" and meta["source"] == str(path)
    assert sum(meta["counts"].values()) == 22
    assert result.paths["train"].name == "train.jsonl" and result.paths["valid"].name == "valid.jsonl"


def test_categorical_labels_are_not_ordinal(tmp_path):
    result = build_dataset(make_csv(tmp_path, {"Tops": 10, "Dresses": 10}), text_columns=["text"],
                           label_column="label", out_dir=tmp_path / "out")
    assert result.labels == ["Dresses", "Tops"] and not result.ordinal


def test_unknown_column_names_file_column_and_columns_present(fixtures, tmp_path):
    with pytest.raises(DataFileError) as err:
        build_dataset(fixtures / "amazon_reviews_tiny.jsonl", text_columns=["review_body"], label_column="rating",
                      out_dir=tmp_path / "out")
    text = err.value.render()
    assert "amazon_reviews_tiny.jsonl" in text and "`rating`" in text and "`stars`" in text


def test_no_usable_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n,1\n,2\n")
    with pytest.raises(DataFileError, match="no usable rows"):
        build_dataset(path, text_columns=["text"], label_column="label", out_dir=tmp_path / "out")


def test_bundled_split_membership_and_subsamples(tmp_path):
    from tunelab.data.bundled import get_bundled
    from tunelab.data.readers import read_table

    result = build_dataset("clothing-reviews", out_dir=tmp_path / "out", train_size=300, val_size=50, test_size=80)
    assert result.counts == {"train": 300, "valid": 50, "test": 80}
    dataset = get_bundled("clothing-reviews")
    for split, part in [("train", "train"), ("valid", "valid"), ("test", "test")]:
        table = read_table(dataset.path(part))
        prompts = {make_prompt(r, ["Title", "Review Text"]) for r in table.rows}
        assert all(r["prompt"] in prompts for r in read_jsonl(result.paths[split])), split
    counts = Counter(r["completion"] for r in read_jsonl(result.paths["test"]))
    assert counts[" 5"] > counts[" 1"]  # the skew toward 5 stars is kept


def test_bundled_part_too_small(tmp_path):
    with pytest.raises(InvalidInputError, match="the valid part has 2264"):
        build_dataset("clothing-reviews", out_dir=tmp_path / "out", val_size=5000)


def test_a_list_or_object_cell_is_refused_with_file_line_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"t": f"text {i}", "y": "a" if i % 2 else "b"} for i in range(20)]
    rows[3]["y"] = ["a"]
    rows[5]["t"] = {"title": "x"}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataFileError) as err:
        build_dataset(path, text_columns=["t"], label_column="y", out_dir=tmp_path / "out")
    text = err.value.render()
    assert f"{path}:4: field `y`: a JSON list" in text and f"{path}:6: field `t`: a JSON object" in text
    assert not (tmp_path / "out").exists()


def _amazon_rows(tmp_path, stars):
    path = tmp_path / "dataset_en_train.json"
    path.write_text("".join(json.dumps({"review_title": f"t{i}", "review_body": f"body number {i}", "stars": s}) + "\n"
                            for i, s in enumerate(stars)))
    return path


def test_star_preset_refuses_a_value_outside_1_to_5_naming_file_line_and_field(tmp_path):
    stars = [1, 2, 3, 4, 5] * 8
    stars[6], stars[20] = "five", 4.5
    path = _amazon_rows(tmp_path, stars)
    with pytest.raises(DataFileError) as err:
        build_dataset(path, preset="amazon-stars", out_dir=tmp_path / "out")
    text = err.value.render()
    assert "2 row(s) have a `stars` that is not one of 1, 2, 3, 4, 5 (--preset amazon-stars)" in text
    assert "dataset_en_train.json:7: `stars` is 'five'" in text and "dataset_en_train.json:21: `stars` is '4.5'" in text
    assert "--merge 'five=5'" in text and "--text review_title,review_body --label stars" in text
    assert not (tmp_path / "out").exists()
    # The way out the message names: a merge map that says what "five" means, or the columns without the preset.
    assert build_dataset(path, preset="amazon-stars", merge={"five": "5", "4.5": "4"}, out_dir=tmp_path / "m").ordinal
    assert "five" in build_dataset(path, text_columns=["review_body"], label_column="stars", out_dir=tmp_path / "c").labels


def test_rebuild_interrupted_midway_leaves_no_labels_json(tmp_path, monkeypatch):
    """labels.json marks a complete build: a rebuild killed after its new train.jsonl must not leave
    the earlier build's labels.json next to it (and the earlier valid/test files)."""
    import tunelab.data.builder as builder

    path = make_csv(tmp_path, {"a": 20, "b": 20})
    out = tmp_path / "out"
    build_dataset(path, text_columns=["text"], label_column="label", out_dir=out, seed=1)
    assert (out / "labels.json").exists()
    die_after_first_write(monkeypatch, builder)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(path, text_columns=["text"], label_column="label", out_dir=out, seed=2)
    assert not (out / "labels.json").exists()
