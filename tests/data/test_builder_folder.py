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
