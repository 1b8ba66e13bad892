"""Merge maps: the label rules (tunelab.data.labels), applying them to a dataset folder
(tunelab.data.label_maps) and to `datasets build`; bad maps are refused with nothing written."""

from __future__ import annotations

import json

import pytest

from tests.helpers.crash import die_after_first_write
from tunelab.data.builder import build_dataset
from tunelab.data.label_maps import merge_dataset, merge_request, read_merge_file
from tunelab.data.labels import check_merge_map, merged_label, parse_merge_spec
from tunelab.errors import InvalidInputError

LABELS = ["Blouses", "Knits", "Dresses", "Chemises"]


def test_parse_merge_spec():
    assert parse_merge_spec("Blouses+Knits=Tops") == {"Blouses": "Tops", "Knits": "Tops"}
    assert parse_merge_spec(" Chemises = Intimates ") == {"Chemises": "Intimates"}
    for bad in ("Blouses", "=Tops", "Blouses+=Tops", "Blouses+Knits="):
        with pytest.raises(InvalidInputError, match="A\\+B=C|OLD\\+OTHER=NEW"):
            parse_merge_spec(bad)


def test_check_merge_map_resolves_completions_and_refuses_bad_maps():
    completions = [" Blouses", " Knits", " Dresses"]
    resolved = check_merge_map({"Blouses": "Tops", "Knits": "Tops"}, completions)
    assert resolved == {" Blouses": "Tops", " Knits": "Tops"}
    assert merged_label(" Blouses", resolved) == " Tops" and merged_label(" Dresses", resolved) == " Dresses"
    with pytest.raises(InvalidInputError) as info:
        check_merge_map({"Shoes": "Tops", "Knits": ""}, completions)
    assert "'Shoes' is not one of the labels" in info.value.render()
    assert "'Knits' is mapped to an empty name" in info.value.render()
    with pytest.raises(InvalidInputError, match="single class"):
        check_merge_map({"Blouses": "All", "Knits": "All", "Dresses": "All"}, completions)


def test_a_chained_map_is_refused_rather_than_applied_halfway():
    # {"Blouses": "Knits", "Knits": "Tops"} read as Blouses -> Knits -> Tops would otherwise leave
    # the Blouses rows in a class still called Knits and the Knits rows in Tops.
    completions = [" Blouses", " Knits", " Dresses"]
    with pytest.raises(InvalidInputError) as info:
        check_merge_map({"Blouses": "Knits", "Knits": "Tops"}, completions)
    assert "'Blouses' is merged into 'Knits', which the map itself renames to 'Tops'" in info.value.render()
    assert "'Blouses': 'Tops'" in info.value.render()
    # a target that the map keeps (merged into itself) is no chain
    assert check_merge_map({"Blouses": "Knits", "Knits": "Knits"}, completions) == {" Blouses": "Knits", " Knits": "Knits"}


def test_merge_request_combines_file_and_specs(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"Chemises": "Intimates"}))
    assert merge_request(path, ["Blouses+Knits=Tops"]) == {"Chemises": "Intimates", "Blouses": "Tops", "Knits": "Tops"}
    with pytest.raises(InvalidInputError, match="merged into both"):
        merge_request(path, ["Chemises=Sleep"])
    path.write_text('["Chemises", "Intimates"]')
    with pytest.raises(InvalidInputError, match="JSON object"):
        read_merge_file(path)
    path.write_text('{"Chemises": 3}')
    with pytest.raises(InvalidInputError, match="field 'Chemises'"):
        read_merge_file(path)


def _folder(tmp_path, rows_by_split):
    folder = tmp_path / "data"
    folder.mkdir()
    labels = sorted({label for rows in rows_by_split.values() for _, label in rows})
    for split, rows in rows_by_split.items():
        (folder / f"{split}.jsonl").write_text("".join(
            json.dumps({"prompt": f"{text}\n\n###\n\n", "completion": f" {label}"}) + "\n" for text, label in rows))
    (folder / "labels.json").write_text(json.dumps({"labels": labels, "label_column": "Class Name"}))
    return folder


ROWS = {"train": [("silk top", "Blouses"), ("cotton top", "Knits"), ("long dress", "Dresses"),
                  ("lace slip", "Chemises"), ("short dress", "Dresses"), ("knit tee", "Knits")],
        "valid": [("sheer top", "Blouses"), ("maxi dress", "Dresses")],
        "test": [("tank top", "Knits"), ("red dress", "Dresses"), ("sheer blouse", "Blouses")]}


def test_merge_dataset_applies_the_map_to_every_split_and_records_it(tmp_path):
    folder = _folder(tmp_path, ROWS)
    result = merge_dataset(folder, {"Blouses": "Tops", "Knits": "Tops", "Chemises": "Dresses"}, tmp_path / "merged")
    assert result.labels == ["Dresses", "Tops"]
    for split in ("train", "valid", "test"):
        rows = [json.loads(line) for line in (tmp_path / "merged" / f"{split}.jsonl").read_text().splitlines()]
        assert {r["completion"] for r in rows} <= {" Dresses", " Tops"}
        assert [r["prompt"] for r in rows] == [f"{text}\n\n###\n\n" for text, _ in ROWS[split]]
    meta = json.loads((tmp_path / "merged" / "labels.json").read_text())
    assert meta["merged"] == {"Blouses": "Tops", "Knits": "Tops", "Chemises": "Dresses"}
    assert meta["labels_before_merge"] == ["Blouses", "Chemises", "Dresses", "Knits"]
    assert meta["label_column"] == "Class Name" and meta["label_counts"]["train"] == {"Dresses": 3, "Tops": 3}


@pytest.mark.parametrize("mapping, files, message", [
    ({"Shoes": "Tops"}, None, "'Shoes' is not one of the labels"),
    ({"Blouses": "X", "Knits": "X", "Dresses": "X", "Chemises": "X"}, None, "single class"),
    ({"Blouses": "Tops"}, {"test": [("odd row", "Shoes")]}, "disagree with"),
])
def test_bad_merges_write_nothing(tmp_path, mapping, files, message):
    folder = _folder(tmp_path, {**ROWS, **(files or {})})
    if files:  # labels.json written from the original rows: the edited file disagrees with it
        (folder / "labels.json").write_text(json.dumps({"labels": ["Blouses", "Chemises", "Dresses", "Knits"]}))
    with pytest.raises(InvalidInputError, match=message):
        merge_dataset(folder, mapping, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_a_class_left_without_training_rows(tmp_path):
    folder = _folder(tmp_path, {**ROWS, "valid": [("sheer top", "Blouses"), ("a coat", "Coats")]})
    (folder / "labels.json").write_text(json.dumps({"labels": ["Blouses", "Chemises", "Coats", "Dresses", "Knits"]}))
    with pytest.raises(InvalidInputError, match="no row of 'Coats'") as err:
        merge_dataset(folder, {"Chemises": "Dresses"}, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
    # The class never had a training row (a category only in the test file): the message says so,
    # where its rows are, and how to fold it.
    text = err.value.render()
    assert "'Coats' (1 valid row(s), none in train before the merge either)" in text
    assert "--merge 'Coats=OTHER_LABEL'" in text


def test_build_with_merge_stratifies_on_the_merged_labels(tmp_path):
    out = tmp_path / "built"
    result = build_dataset("clothing-reviews", out_dir=out, preset="clothing-class", train_size=600, val_size=100,
                           test_size=200, merge={"Chemises": "Intimates", "Casual bottoms": "Pants",
                                                 "Blouses": "Tops", "Knits": "Tops"})
    assert {"Chemises", "Casual bottoms", "Blouses", "Knits"}.isdisjoint(result.labels) and "Tops" in result.labels
    meta = json.loads((out / "labels.json").read_text())
    assert meta["merged"] == {"Blouses": "Tops", "Casual bottoms": "Pants", "Chemises": "Intimates", "Knits": "Tops"}
    assert len(meta["labels_before_merge"]) == 20 and len(meta["labels"]) == 17
    completions = {json.loads(line)["completion"] for line in (out / "train.jsonl").read_text().splitlines()}
    assert " Tops" in completions and " Knits" not in completions
    with pytest.raises(InvalidInputError, match="'Shirts' is not one of the labels"):
        build_dataset("clothing-reviews", out_dir=tmp_path / "bad", preset="clothing-class", train_size=100,
                      merge={"Shirts": "Tops"})
    assert not (tmp_path / "bad").exists()


def test_a_second_merge_composes_with_the_first(tmp_path):
    folder = _folder(tmp_path, ROWS)
    merge_dataset(folder, {"Chemises": "Dresses"}, tmp_path / "one")
    result = merge_dataset(tmp_path / "one", {"Dresses": "Dresses & slips"}, tmp_path / "two")
    meta = json.loads((tmp_path / "two" / "labels.json").read_text())
    assert meta["merged"] == {"Chemises": "Dresses & slips", "Dresses": "Dresses & slips"}
    assert meta["labels_before_merge"] == ["Blouses", "Chemises", "Dresses", "Knits"]
    assert result.labels == ["Blouses", "Dresses & slips", "Knits"]


def test_a_merge_killed_midway_leaves_no_earlier_labels_json(tmp_path, monkeypatch):
    """labels.json marks a complete merged set: a second merge into the same folder killed after its
    first file must not leave the first merge's labels.json vouching for the mixed folder."""
    import tunelab.data.label_maps as label_maps

    folder = _folder(tmp_path, ROWS)
    merge_dataset(folder, {"Chemises": "Dresses"}, tmp_path / "merged")
    assert (tmp_path / "merged" / "labels.json").exists()
    die_after_first_write(monkeypatch, label_maps)
    with pytest.raises(KeyboardInterrupt):
        merge_dataset(folder, {"Blouses": "Tops", "Chemises": "Dresses"}, tmp_path / "merged")
    assert not (tmp_path / "merged" / "labels.json").exists()
