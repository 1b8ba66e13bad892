"""A folder holding one file per split (SST-5's sst5_train/dev/test.jsonl) keeps its standard split."""

from __future__ import annotations

import json

import pytest

from tunelab.data.builder import build_dataset, split_files
from tunelab.errors import DataFileError


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _folder(tmp_path, with_dev=True):
    folder = tmp_path / "sst"
    folder.mkdir()
    _write(folder / "sst5_train.jsonl", [{"text": f"train sentence {i}", "label": i % 5} for i in range(50)])
    if with_dev:
        _write(folder / "sst5_dev.jsonl", [{"text": f"dev sentence {i}", "label": i % 5} for i in range(10)])
    _write(folder / "sst5_test.jsonl", [{"text": f"test sentence {i}", "label": i % 5} for i in range(20)])
    (folder / "SOURCE.md").write_text("not a table")
    return folder


def test_standard_split_is_kept(tmp_path):
    result = build_dataset(_folder(tmp_path), out_dir=tmp_path / "out", preset="sst5")
    assert result.counts == {"train": 50, "valid": 10, "test": 20}
    assert result.labels == ["0", "1", "2", "3", "4"] and result.ordinal
    test_prompts = [json.loads(line)["prompt"] for line in open(result.paths["test"])]
    assert all(p.startswith("test sentence") for p in test_prompts)
    first = json.loads(open(result.paths["train"]).readline())
    assert first["completion"] in {" 0", " 1", " 2", " 3", " 4"} and first["prompt"].endswith("\n\n###\n\n")


def test_without_a_dev_file_validation_comes_out_of_train(tmp_path):
    result = build_dataset(_folder(tmp_path, with_dev=False), out_dir=tmp_path / "out", text_columns=["text"],
                           label_column="label", val_size=5)
    assert result.counts == {"train": 45, "valid": 5, "test": 20}


def test_a_size_larger_than_a_folders_part_names_the_part_not_a_bundled_dataset(tmp_path):
    from tunelab.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as err:
        build_dataset(_folder(tmp_path), out_dir=tmp_path / "out", preset="sst5", val_size=30)
    text = err.value.render()
    assert "Asked for 30 valid rows, but the valid part has 10 usable rows." in text and "bundled valid" not in text
    assert "give --val-size 10 or less" in text


def test_a_folder_needs_train_and_test(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    _write(folder / "train.jsonl", [{"text": "a", "label": 1}])
    with pytest.raises(DataFileError, match="no test file"):
        split_files(folder)


def test_the_amazon_release_layout_keeps_its_split(tmp_path):
    """The Amazon Multilingual Reviews files as released: dataset_en_{train,dev,test}.json, JSON
    lines under a .json name; --train-size samples within the train file only."""
    folder = tmp_path / "amazon"
    folder.mkdir()
    for part, n in (("train", 60), ("dev", 10), ("test", 15)):
        _write(folder / f"dataset_en_{part}.json",
               [{"review_id": f"en_{part}_{i}", "stars": 1 + i % 5, "review_body": f"{part} body {i}",
                 "review_title": f"title {i}", "language": "en", "product_category": "home"} for i in range(n)])
    result = build_dataset(folder, out_dir=tmp_path / "out", preset="amazon-stars", train_size=40)
    assert result.counts == {"train": 40, "valid": 10, "test": 15}
    assert result.labels == ["1", "2", "3", "4", "5"] and result.ordinal
    valid = [json.loads(line)["prompt"] for line in open(result.paths["valid"])]
    assert all(p.startswith("title ") and "\ndev body " in p for p in valid)


def _categories(folder, train, dev, test):
    """Amazon-layout files whose product_category column holds the given labels, row by row."""
    folder.mkdir()
    for part, labels in (("train", train), ("dev", dev), ("test", test)):
        _write(folder / f"dataset_en_{part}.json",
               [{"review_body": f"{part} body {i}", "review_title": "t", "stars": 3, "product_category": label}
                for i, label in enumerate(labels)])
    return folder


def test_a_train_size_sample_keeps_every_rare_category(tmp_path):
    """31 imbalanced categories: a proportional sample of the train file would drop a category with
    one or two rows, and the next fine_tunes.create would refuse the validation file."""
    train = ["home"] * 300 + ["pc"] * 100 + ["watch"] * 2 + ["digital_ebook_purchase"]
    folder = _categories(tmp_path / "amazon", train, ["home", "pc", "watch", "digital_ebook_purchase"], ["home", "pc"])
    result = build_dataset(folder, out_dir=tmp_path / "out", preset="amazon-category", train_size=40)
    assert result.counts["train"] == 40
    assert all(result.label_counts["train"][label] >= 1 for label in result.labels)
    assert result.label_counts["train"]["home"] > result.label_counts["train"]["pc"] > 1


def test_a_label_missing_from_train_gets_a_validation_row_and_a_test_only_label_a_note(tmp_path):
    folder = _categories(tmp_path / "amazon", ["home"] * 20 + ["pc"] * 20, ["home", "pc", "toy", "toy"],
                         ["home", "pc", "luggage"])
    result = build_dataset(folder, out_dir=tmp_path / "out", preset="amazon-category")
    assert result.label_counts["train"]["toy"] == 1 and result.label_counts["valid"]["toy"] == 1
    assert result.counts == {"train": 41, "valid": 3, "test": 3}
    assert any("moved to train" in note and "'toy'" in note for note in result.notes)
    assert any("'luggage'" in note and "only in the test part" in note for note in result.notes)
    saved = json.loads(result.paths["labels"].read_text())
    assert saved["notes"] == result.notes


def test_a_release_keeps_its_test_rows_even_when_they_repeat_a_prompt(tmp_path):
    """Amazon's official 5,000-review test split stays 5,000 rows: short reviews ("Five Stars" /
    "Great") recur across and within the released files, and scores must compare with published ones."""
    train = [{"review_body": f"body {i}", "review_title": "t", "stars": 1 + i % 5} for i in range(20)]
    train.append(dict(train[0]))  # a repeat inside train is still dropped
    dev = [{"review_body": "body 1", "review_title": "t", "stars": 2}, {"review_body": "dev", "review_title": "t", "stars": 3}]
    test = [{"review_body": "body 2", "review_title": "t", "stars": 3}] * 2 + [{"review_body": "new", "review_title": "t", "stars": 4}]
    folder = tmp_path / "amazon"
    folder.mkdir()
    for part, rows in (("train", train), ("dev", dev), ("test", test)):
        _write(folder / f"dataset_en_{part}.json", rows)
    result = build_dataset(folder, out_dir=tmp_path / "out", preset="amazon-stars")
    assert result.counts == {"train": 20, "valid": 2, "test": 3}
    assert result.dropped["duplicate_prompt"] == 1
    assert any(note.startswith("2 test row(s) repeat a prompt of an earlier row") for note in result.notes)
    assert any(note.startswith("1 validation row(s) repeat") for note in result.notes)


def _release(root, languages=("de", "en"), subfolders=True):
    """Amazon Multilingual Reviews as released: train/, dev/, test/ holding dataset_<lang>_<split>.json."""
    for part, n in (("train", 30), ("dev", 5), ("test", 6)):
        where = root / part if subfolders else root
        where.mkdir(parents=True, exist_ok=True)
        for lang in languages:
            _write(where / f"dataset_{lang}_{part}.json",
                   [{"review_body": f"{lang} {part} {i}", "review_title": "t", "stars": 1 + i % 5, "language": lang}
                    for i in range(n)])
    return root


def test_the_multilingual_release_is_read_one_language_at_a_time(tmp_path):
    root = _release(tmp_path / "amazon_reviews_multi")
    with pytest.raises(DataFileError) as err:
        build_dataset(root, out_dir=tmp_path / "out", preset="amazon-stars")
    assert "several files look like the train split" in err.value.message
    assert "--language CODE (these files: de, en)" in err.value.render()
    assert not (tmp_path / "out").exists()
    result = build_dataset(root, out_dir=tmp_path / "out", preset="amazon-stars", language="en")
    assert result.counts == {"train": 30, "valid": 5, "test": 6}
    prompts = [json.loads(line)["prompt"] for line in open(result.paths["test"])]
    assert all(p.split("\n")[1].startswith("en test") for p in prompts)
    with pytest.raises(DataFileError, match="language code 'fr'"):
        build_dataset(root, out_dir=tmp_path / "out2", preset="amazon-stars", language="fr")


def test_one_language_in_flat_files_needs_no_language_option(tmp_path):
    root = _release(tmp_path / "en_only", languages=("en",), subfolders=False)
    assert build_dataset(root, out_dir=tmp_path / "out", preset="amazon-stars").counts["test"] == 6


def test_language_needs_a_folder(tmp_path):
    from tunelab.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="--language picks files in a folder"):
        build_dataset("clothing-reviews", out_dir=tmp_path / "out", language="en")


def test_a_missing_column_error_suggests_the_close_name_and_the_preset_that_fits(tmp_path):
    path = tmp_path / "reviews.jsonl"
    _write(path, [{"review_title": "t", "review_body": "b", "stars": 5}] * 3)
    with pytest.raises(DataFileError) as err:
        build_dataset(path, out_dir=tmp_path / "out", text_columns=["review_titel", "review_body"], label_column="stars")
    text = err.value.render()
    assert "no column `review_titel`" in text and "Did you mean `review_title` for `review_titel`?" in text
    assert "this table fits --preset amazon-stars;" in text


def test_a_build_never_writes_over_its_input_or_raw_data(tmp_path, monkeypatch):
    """Raw Amazon-shaped reviews in data/{train,dev,test}.jsonl and `--out data`, as the raw-table
    error once suggested: the build wrote data/train.jsonl and data/test.jsonl over the reviews.
    It now refuses and writes nothing; a folder of an earlier build is still written over."""
    from tunelab.data.readers import read_prompt_completion
    from tunelab.errors import InvalidInputError

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    for part, n in (("train", 40), ("dev", 10), ("test", 10)):
        _write(data / f"{part}.jsonl", [{"review_id": f"{part}_{i}", "stars": 1 + i % 5, "review_body": f"{part} {i}",
                                         "review_title": "", "product_category": "home"} for i in range(n)])
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    with pytest.raises(InvalidInputError, match="write over the input file"):
        build_dataset(data, out_dir=data, preset="amazon-stars")
    with pytest.raises(InvalidInputError, match="not a prompt/completion file of an earlier build"):
        build_dataset(data / "dev.jsonl", out_dir=data, preset="amazon-stars")
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    build_dataset(data, out_dir="prompts", preset="amazon-stars")
    assert build_dataset(data, out_dir="prompts", preset="amazon-stars").counts["train"] == 40  # a rebuild
    # the raw-table error suggests an output folder other than the raw file's own
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(data / "train.jsonl")
    assert "--preset amazon-stars --out prompts`" in err.value.render()
    # a file there that is not JSON lines at all (binary) is refused the same way, not a crash
    (tmp_path / "prompts" / "test.jsonl").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InvalidInputError, match="not a prompt/completion file of an earlier build"):
        build_dataset(data, out_dir="prompts", preset="amazon-stars")


def test_train_size_zero_is_refused_and_writes_nothing(tmp_path):
    from tunelab.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="--train-size 0 leaves no training rows"):
        build_dataset(_folder(tmp_path), out_dir=tmp_path / "out", preset="sst5", train_size=0)
    assert not (tmp_path / "out").exists()
