"""More context in the prompt (§4.6.4): several --text columns, joined in the order given, empty
fields skipped, on the Amazon Multilingual Reviews JSON-lines format."""

from __future__ import annotations

import json

from tests.conftest import run_cli

SEP = "\n\n###\n\n"


def test_several_text_columns_make_the_prompt(tmp_path, capsys):
    rows = [{"review_id": f"r{i}", "review_title": "Great lamp" if i % 4 else "", "review_body": f"Bright light {i}",
             "stars": 5, "product_category": "home" if i % 2 else "kitchen", "language": "en"} for i in range(40)]
    source = tmp_path / "reviews.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_cli("datasets", "build", source, "--text", "review_title,review_body", "--label", "product_category",
                   "--out", tmp_path / "two", "--val-size", "4", "--test-size", "4") == 0
    assert run_cli("datasets", "build", source, "--text", "review_body", "--label", "product_category",
                   "--out", tmp_path / "one", "--val-size", "4", "--test-size", "4") == 0
    capsys.readouterr()
    two = [json.loads(line) for part in ("train", "valid", "test")
           for line in (tmp_path / "two" / f"{part}.jsonl").read_text().splitlines()]
    by_body = {r["prompt"].split("Bright light ")[1].split(SEP)[0]: r["prompt"] for r in two}
    assert by_body["1"] == f"Great lamp\nBright light 1{SEP}"  # title first, then body
    assert by_body["4"] == f"Bright light 4{SEP}"  # an empty title is skipped, not an empty line
    one = [json.loads(line) for line in (tmp_path / "one" / "train.jsonl").read_text().splitlines()]
    assert all(not r["prompt"].startswith("Great lamp") for r in one)
    meta = json.loads((tmp_path / "two" / "labels.json").read_text())
    assert meta["text_columns"] == ["review_title", "review_body"] and meta["labels"] == ["home", "kitchen"]
