"""`tunelab datasets list` and `tunelab datasets build` on the Amazon-format JSONL, the clothing
CSV and the bundled clothing-reviews dataset."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from tests.conftest import run_cli
from tunelab.data.builder import make_prompt

SEP = "\n\n###\n\n"
STARS = {" 1", " 2", " 3", " 4", " 5"}
SPLITS = ("train", "valid", "test")


def build(capsys, *argv):
    code = run_cli("datasets", "build", *argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def read_split(out_dir, split):
    return [json.loads(line) for line in (out_dir / f"{split}.jsonl").read_text().splitlines()]


def file_bytes(out_dir):
    return {name: (out_dir / name).read_bytes() for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "labels.json")}


def test_list_shows_the_bundled_dataset(capsys):
    assert run_cli("datasets", "list") == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("clothing-reviews"))
    assert line.split()[1:4] == ["15849", "2264", "4529"]
    assert "CC0-1.0" in line and "clothing-stars" in line and "Review Text" in line
    assert "amazon-stars" in out and "review_title, review_body -> stars" in out


def test_list_json(capsys):
    assert run_cli("datasets", "list", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["datasets"][0]["name"] == "clothing-reviews"
    assert data["datasets"][0]["rows"] == {"train": 15849, "valid": 2264, "test": 4529}
    assert {p["name"] for p in data["presets"]} == {"amazon-stars", "amazon-category", "clothing-stars",
                                                    "clothing-department", "clothing-class", "sst5"}


@pytest.mark.parametrize("fixture, preset, n_rows", [
    ("amazon_reviews_tiny.jsonl", "amazon-stars", 58),  # 60 - 1 empty text - 1 duplicate
    ("clothing_reviews_tiny.csv", "clothing-stars", 60),  # 61 - 1 empty text
])
def test_build_star_ratings(capsys, fixtures, tmp_path, fixture, preset, n_rows):
    out_dir = tmp_path / "out"
    code, out, _ = build(capsys, fixtures / fixture, "--preset", preset, "--out", out_dir)
    assert code == 0
    assert "5 ordinal labels" in out and "--classification_n_classes 5" in out
    splits = {s: read_split(out_dir, s) for s in SPLITS}
    rows = [r for s in SPLITS for r in splits[s]]
    assert len(rows) == n_rows
    assert all(r["prompt"].endswith(SEP) and set(r) == {"prompt", "completion"} for r in rows)
    assert {r["completion"] for r in rows} == STARS
    # no prompt in two splits (nor twice in one)
    assert len({r["prompt"] for r in rows}) == n_rows
    # stratified: each split's class counts within one row of its share
    overall = Counter(r["completion"] for r in rows)
    for split in SPLITS:
        counts = Counter(r["completion"] for r in splits[split])
        for label, n in overall.items():
            assert abs(counts[label] - len(splits[split]) * n / n_rows) <= 1, (split, label)
    meta = json.loads((out_dir / "labels.json").read_text())
    assert meta["labels"] == ["1", "2", "3", "4", "5"] and meta["ordinal"] is True
    assert sum(meta["counts"].values()) == n_rows and meta["dropped"]["empty_text"] == 1


def test_amazon_title_only_row_is_kept_and_multiline_csv_text_survives(capsys, fixtures, tmp_path):
    build(capsys, fixtures / "amazon_reviews_tiny.jsonl", "--preset", "amazon-stars", "--out", tmp_path / "a")
    prompts = [r["prompt"] for s in SPLITS for r in read_split(tmp_path / "a", s)]
    assert "Flimsy home purchase" + SEP in prompts
    build(capsys, fixtures / "clothing_reviews_tiny.csv", "--preset", "clothing-stars", "--out", tmp_path / "c")
    prompts = [r["prompt"] for s in SPLITS for r in read_split(tmp_path / "c", s)]
    assert any("\nline two, with a comma." in p for p in prompts)
    assert any('\r\n\r\nsecond paragraph: "fits"' in p for p in prompts)


def test_same_seed_is_byte_identical_and_another_seed_differs(capsys, fixtures, tmp_path):
    src = fixtures / "amazon_reviews_tiny.jsonl"
    for name, seed in [("a", "3"), ("b", "3"), ("c", "4")]:
        assert build(capsys, src, "--preset", "amazon-stars", "--out", tmp_path / name, "--seed", seed)[0] == 0
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (tmp_path / "c" / "train.jsonl").read_bytes()


def test_no_shuffle_sorts_every_file_by_label(capsys, fixtures, tmp_path):
    out_dir = tmp_path / "out"
    assert build(capsys, fixtures / "clothing_reviews_tiny.csv", "--preset", "clothing-stars", "--out", out_dir,
                 "--no-shuffle")[0] == 0
    for split in SPLITS:
        stars = [int(r["completion"]) for r in read_split(out_dir, split)]
        assert stars == sorted(stars) and len(set(stars)) > 1
    assert json.loads((out_dir / "labels.json").read_text())["shuffled"] is False


def test_text_and_label_override_the_preset(capsys, fixtures, tmp_path):
    out_dir = tmp_path / "out"
    code, out, _ = build(capsys, fixtures / "clothing_reviews_tiny.csv", "--preset", "clothing-stars",
                         "--text", "Review Text", "--label", "Department Name", "--out", out_dir,
                         "--separator", "\\n->\\n", "--val-size", "5", "--test-size", "5")
    assert code == 0 and "categorical labels" in out
    rows = read_split(out_dir, "train")
    assert {r["completion"] for r in rows} <= {" Tops", " Dresses", " Bottoms", " Intimate", " Jackets"}
    assert all(r["prompt"].endswith("\n->\n") for r in rows)
    meta = json.loads((out_dir / "labels.json").read_text())
    assert meta["text_columns"] == ["Review Text"] and meta["separator"] == "\n->\n"
    assert meta["counts"]["valid"] == 5 and meta["counts"]["test"] == 5


def test_amazon_category_preset(capsys, fixtures, tmp_path):
    code, out, _ = build(capsys, fixtures / "amazon_reviews_tiny.jsonl", "--preset", "amazon-category",
                         "--out", tmp_path / "out")
    assert code == 0 and "5 categorical labels" in out


@pytest.mark.parametrize("argv, expected", [
    (["--text", "Title,Body", "--label", "Rating"], ["clothing_reviews_tiny.csv", "no column `Body`",
                                                     "Columns present:", "`Review Text`"]),
    (["--preset", "nope"], ["Unknown preset 'nope'", "clothing-stars"]),
    (["--text", "Title"], ["Say which columns"]),
])
def test_bad_columns_are_clear_errors(capsys, fixtures, tmp_path, argv, expected):
    code, _, err = build(capsys, fixtures / "clothing_reviews_tiny.csv", *argv, "--out", tmp_path / "out")
    assert code == 2
    for fragment in expected:
        assert fragment in err
    assert not (tmp_path / "out").exists()


def test_unknown_input(capsys, tmp_path):
    code, _, err = build(capsys, "no-such-dataset", "--preset", "amazon-stars", "--out", tmp_path / "out")
    assert code == 3 and "no such file or bundled dataset" in err and "clothing-reviews" in err


def test_negative_size_is_rejected_by_argparse(capsys, fixtures, tmp_path):
    with pytest.raises(SystemExit):
        run_cli("datasets", "build", fixtures / "amazon_reviews_tiny.jsonl", "--out", tmp_path / "o",
                "--val-size", "-1")


def test_build_bundled_keeps_canonical_membership(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, _ = build(capsys, "clothing-reviews", "--out", out_dir, "--train-size", "500", "--val-size", "100",
                         "--test-size", "200")
    assert code == 0
    counts = {s: len(read_split(out_dir, s)) for s in SPLITS}
    assert counts == {"train": 500, "valid": 100, "test": 200}
    from tunelab.data.bundled import get_bundled

    dataset = get_bundled("clothing-reviews")
    for split in SPLITS:
        with gzip.open(dataset.path(split), "rt", encoding="utf-8") as fh:
            part_prompts = {make_prompt(json.loads(line), ["Title", "Review Text"]) for line in fh}
        rows = read_split(out_dir, split)
        assert all(r["prompt"] in part_prompts for r in rows), split
        assert {r["completion"] for r in rows} == STARS
    meta = json.loads((out_dir / "labels.json").read_text())
    assert meta["preset"] == "clothing-stars" and meta["source"] == "clothing-reviews"


def test_missing_input_is_named_before_columns(tmp_path, capsys):
    code = run_cli("datasets", "build", tmp_path / "nope.csv", "--out", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 3
    assert "nope.csv: no such file or bundled dataset" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_test_only_category_is_not_counted_in_the_suggested_command(capsys, tmp_path):
    """Amazon's categories: one found only in the test file is kept there (with a note), and the
    printed fine_tunes.create counts the training file's classes, which is what it checks."""
    folder = tmp_path / "amazon"
    folder.mkdir()
    for part, labels in (("train", ["home", "pc", "toy"] * 10), ("dev", ["home", "pc", "toy"]),
                         ("test", ["home", "pc", "toy", "luggage"])):
        (folder / f"dataset_en_{part}.json").write_text("".join(
            json.dumps({"review_body": f"{part} body {i}", "review_title": "t", "stars": 3, "product_category": label})
            + "\n" for i, label in enumerate(labels)))
    code, out, _ = build(capsys, folder, "--preset", "amazon-category", "--out", tmp_path / "out")
    assert code == 0 and "4 categorical labels" in out and "only in the test part" in out
    assert "--classification_n_classes 3" in out


def test_chinese_reviews_for_minilm_get_a_note_on_its_unk_share(capsys, tmp_path):
    # minilm-l6's English vocabulary lacks most Chinese characters; the packaged tokenizer is real.
    bodies = ["质量很好，物流也很快，非常满意！", "用了两天就坏了，太失望了。", "一般般吧，价格还算合理。",
              "非常差，和描述完全不一样，不推荐购买。", "孩子很喜欢，下次还会再来买。"]
    rows = [{"review_id": f"zh_{i}", "stars": i % 5 + 1, "review_body": f"{bodies[i % 5]} {i}", "review_title": "",
             "language": "zh", "product_category": "home"} for i in range(60)]
    src = tmp_path / "dataset_zh_train.json"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    code, out, _ = build(capsys, src, "--preset", "amazon-stars", "--out", tmp_path / "zh")
    assert code == 0
    [note] = [line for line in out.splitlines() if "[UNK]" in line]
    assert note.startswith("Note: minilm-l6's tokenizer reads ") and "smollm2-135m" in note
    code, out, _ = build(capsys, src, "--preset", "amazon-stars", "--out", tmp_path / "zh-smol", "-m", "smollm2-135m")
    assert code == 0 and "[UNK]" not in out  # a byte-level tokenizer has no [UNK]
