"""`tunelab tools fine_tunes.prepare_data` on every fixture: report, exit code, no traceback,
and no output file at all for unusable input."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_cli

SEP = "\n\n###\n\n"


@pytest.fixture
def copy(fixtures, tmp_path):
    """Copy a fixture into tmp_path so the *_prepared* output lands there, not in tests/fixtures."""

    def _copy(name: str):
        return shutil.copy(fixtures / name, tmp_path / name)

    return _copy


def prepare_data(capsys, path, *extra):
    code = run_cli("tools", "fine_tunes.prepare_data", "-f", path, *extra)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def prepared(tmp_path):
    return sorted(p.name for p in tmp_path.glob("*_prepared*"))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name, expected", [
    ("prepare_missing_completion.csv", ["has no `completion` column", "Columns found: `prompt`, `label`",
                                        "Rename the column"]),
    ("prepare_malformed_line7.jsonl", ["line 7: malformed JSON: Expecting ',' delimiter"]),
    ("empty.jsonl", ["is empty"]),
    ("non_utf8.csv", ["not valid UTF-8", "byte offset 46", "line 3"]),
    ("amazon_reviews_tiny.jsonl", ["no `prompt` or `completion` column", "`review_body`", "tunelab datasets build",
                                   "--preset amazon-stars --out DIR` (or --preset amazon-category)"]),
])
def test_unusable_files_exit_2_and_write_nothing(capsys, copy, tmp_path, name, expected):
    code, out, err = prepare_data(capsys, copy(name), "-q")
    assert code == 2
    assert err.startswith("Error: ")
    for fragment in expected:
        assert fragment in err
    assert prepared(tmp_path) == []


def test_missing_file(capsys, tmp_path):
    code, _, err = prepare_data(capsys, tmp_path / "nope.jsonl", "-q")
    assert code == 3 and f"The data file {tmp_path / 'nope.jsonl'} does not exist" in err


def test_clean_classification(capsys, copy, tmp_path):
    path = copy("prepare_clean_classification.jsonl")
    code, out, _ = prepare_data(capsys, path, "-q")
    assert code == 0
    assert out.startswith("Analyzing...")
    assert "- Your file contains 60 prompt-completion pairs" in out
    assert "- Based on your data it seems like you're trying to fine-tune a model for classification" in out
    assert "No remediations found." in out
    assert "- WARNING: Your data contains 60 examples" in out
    assert "[Recommended] Split into a training set (48 examples) and a validation set (12 examples), stratified" in out
    train, valid = tmp_path / "prepare_clean_classification_prepared_train.jsonl", \
        tmp_path / "prepare_clean_classification_prepared_valid.jsonl"
    assert prepared(tmp_path) == [train.name, valid.name]
    assert len(read_jsonl(train)) == 48 and len(read_jsonl(valid)) == 12
    assert (f'> tunelab api fine_tunes.create -t "{train}" -v "{valid}" -m ada '
            "--compute_classification_metrics --classification_n_classes 3") in out
    assert "indicator string `\\n\\n###\\n\\n`" in out


def test_duplicates(capsys, copy, tmp_path):
    code, out, _ = prepare_data(capsys, copy("prepare_duplicates.jsonl"), "-q")
    assert code == 0
    assert "- There are 3 duplicated prompt-completion sets. These are rows: [4, 9, 11]" in out
    assert "Based on the analysis we will perform the following actions:" in out
    assert "[Recommended] Remove 3 duplicate rows [Y/n]: Y" in out
    rows = read_jsonl(tmp_path / "prepare_duplicates_prepared.jsonl")
    assert len(rows) == 12 and len({json.dumps(r) for r in rows}) == 12
    assert 'tunelab api fine_tunes.create -t "' in out and "--compute_classification_metrics" not in out
    assert 'stop=["\\n"]' in out


def test_no_leading_space(capsys, copy, tmp_path):
    code, out, _ = prepare_data(capsys, copy("prepare_no_leading_space.jsonl"), "-q")
    assert code == 0
    assert "[Recommended] Add a whitespace character to the beginning of the completion [Y/n]: Y" in out
    rows = read_jsonl(tmp_path / "prepare_no_leading_space_prepared.jsonl")
    assert all(r["completion"].startswith(" ") for r in rows)


def test_no_separator(capsys, copy, tmp_path):
    code, out, _ = prepare_data(capsys, copy("prepare_no_separator.jsonl"), "-q")
    assert code == 0
    assert "does not contain a common separator" in out
    assert "[Recommended] Add a suffix separator `\\n\\n###\\n\\n` to all prompts [Y/n]: Y" in out
    rows = read_jsonl(tmp_path / "prepare_no_separator_prepared.jsonl")
    assert all(r["prompt"].endswith(SEP) for r in rows)


def test_empty_prompt_is_dropped_and_the_separator_recognised(capsys, tmp_path):
    path = tmp_path / "tiny.jsonl"
    path.write_text('{"prompt": "", "completion": " 3"}\n'
                    '{"prompt": "a\\n\\n###\\n\\n", "completion": " 1"}\n'
                    '{"prompt": "b\\n\\n###\\n\\n", "completion": " 2"}\n')
    code, out, _ = prepare_data(capsys, path, "-q")
    assert code == 0
    assert "- There is 1 example with an empty prompt, while the other prompts have text. These are rows: [1]" in out
    assert "[Recommended] Remove 1 row with empty prompts [Y/n]: Y" in out
    assert "common separator" not in out and "All prompts end with suffix `\\n\\n###\\n\\n`" in out
    rows = read_jsonl(tmp_path / "tiny_prepared.jsonl")
    assert [r["prompt"] for r in rows] == ["a" + SEP, "b" + SEP]


def test_bom_jsonl(capsys, copy, tmp_path):
    code, out, _ = prepare_data(capsys, copy("prepare_bom.jsonl"), "-q")
    assert code == 0 and "- Your file contains 30 prompt-completion pairs" in out
    assert not (tmp_path / "prepare_bom_prepared_train.jsonl").read_bytes().startswith(b"\xef\xbb\xbf")


def test_chat_messages(capsys, copy, tmp_path):
    code, out, _ = prepare_data(capsys, copy("chat_messages.jsonl"), "-q")
    assert code == 0 and "8 chat examples" in out
    rows = read_jsonl(tmp_path / "chat_messages_prepared.jsonl")
    assert rows == read_jsonl(tmp_path / "chat_messages.jsonl")


def test_invalid_chat_is_unusable(capsys, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n'
                    '{"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]}\n')
    code, _, err = prepare_data(capsys, path, "-q")
    assert code == 2
    assert "line 1: field `messages` has no assistant message" in err
    assert "line 2: field `messages[0]`.role is 'narrator'" in err
    assert prepared(tmp_path) == []


def test_xlsx(capsys, tmp_path):
    import pandas as pd

    path = tmp_path / "sheet.xlsx"
    pd.DataFrame({"prompt": [f"{w} is here" for w in ["alpha", "bravo", "charlie", "delta"]],
                  "completion": ["one thing", "two things", "three things", "four things"],
                  "notes": ["x"] * 4}).to_excel(path, index=False)
    code, out, _ = prepare_data(capsys, path, "-q")
    assert code == 0
    assert "formatted as a XLSX file" in out
    assert "Remove additional columns/keys: `notes`" in out
    rows = read_jsonl(tmp_path / "sheet_prepared.jsonl")
    assert rows[0] == {"prompt": "alpha is here" + SEP, "completion": " one thing\n"}


def test_csv_with_binary_classes_suggests_a_positive_class(capsys, tmp_path):
    path = tmp_path / "spam.csv"
    lines = ["prompt,completion"] + [f"message {w} {i},{'yes' if i % 3 else 'no'}"
                                     for i, w in enumerate(["alpha", "bravo", "charlie", "delta", "echo"] * 4)]
    path.write_text("\n".join(lines) + "\n")
    code, out, _ = prepare_data(capsys, path, "-q", "-m", "tiny-model")
    assert code == 0
    assert '-m tiny-model --compute_classification_metrics --classification_positive_class " yes"' in out


def test_no_rows_left_writes_nothing(capsys, tmp_path):
    path = tmp_path / "empty_completions.jsonl"
    path.write_text('{"prompt": "a", "completion": ""}\n{"prompt": "b", "completion": ""}\n')
    code, out, err = prepare_data(capsys, path, "-q")
    assert code == 2 and "No rows are left" in err
    assert "[Necessary] Remove 2 rows with empty completions" in out
    assert prepared(tmp_path) == []


def test_declined_actions_are_not_applied(capsys, copy, tmp_path, monkeypatch):
    path = copy("prepare_no_leading_space.jsonl")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["n", "y"])  # decline the prefix removal, accept the leading space
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    code, out, _ = prepare_data(capsys, path)
    assert code == 0
    rows = read_jsonl(tmp_path / "prepare_no_leading_space_prepared.jsonl")
    assert rows[0]["prompt"].startswith("Write a tagline for")
    assert rows[0]["completion"].startswith(" ")


def test_seed_changes_the_split_and_nothing_is_overwritten(capsys, copy, tmp_path):
    path = copy("prepare_clean_classification.jsonl")
    contents = []
    for i, seed in enumerate(("1", "1", "2")):
        _, out, _ = prepare_data(capsys, path, "-q", "--seed", seed)
        index = f" ({i})" if i else ""  # as the legacy tool named them
        valid = tmp_path / f"prepare_clean_classification_prepared_valid{index}.jsonl"
        assert f"`{valid}`" in out
        contents.append(valid.read_bytes())
    assert contents[0] == contents[1] != contents[2]
    assert len(prepared(tmp_path)) == 6


def test_unwritable_directory_is_an_error_not_a_traceback(capsys, copy, tmp_path, monkeypatch):
    path = copy("prepare_duplicates.jsonl")

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr("tunelab.fsutil.tempfile.mkstemp", refuse)
    code, _, err = prepare_data(capsys, path, "-q")
    assert code == 1 and "Cannot write the prepared file" in err and "read-only" in err
    assert prepared(tmp_path) == []


def test_legacy_reading_rules(capsys, tmp_path):
    sheet = tmp_path / "sheet.csv"  # headers in any letter case, as spreadsheets write them
    sheet.write_text("Prompt,COMPLETION\n" + "".join(f"review {i} ->, {'good' if i % 3 else 'bad'}\n"
                                                      for i in range(30)))
    code, out, _ = prepare_data(capsys, sheet, "-q")
    assert code == 0
    rows = read_jsonl(tmp_path / "sheet_prepared_train.jsonl")
    assert set(rows[0]) == {"prompt", "completion"}
    # binary: the most frequent class is the positive class, as the legacy tool chose
    assert '--classification_positive_class " good"' in out

    text = tmp_path / "lines.txt"  # each line a completion with an empty prompt
    words = ["once", "upon", "a", "time", "there", "lived", "an", "old", "king", "with", "three", "sons"]
    text.write_text("".join(f"{w} said line {i}\n" for i, w in enumerate(words)))
    code, out, _ = prepare_data(capsys, text, "-q")
    assert code == 0 and "All prompts are empty" in out
    rows = read_jsonl(tmp_path / "lines_prepared.jsonl")
    assert len(rows) == 12 and rows[0]["prompt"] == "" and "once said line 0" in rows[0]["completion"]


@pytest.mark.parametrize("rows, message", [
    ([("same prompt ->", f" answer {i}") for i in range(6)], "All prompts in"),
    ([(f"prompt {i} ->", " same") for i in range(6)], "All completions in"),
])
def test_identical_prompts_or_completions_abort(capsys, tmp_path, rows, message):
    path = tmp_path / "same.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in rows))
    code, _, err = prepare_data(capsys, path, "-q")
    assert code == 2 and message in err and "identical" in err
    assert prepared(tmp_path) == []


def test_unchanged_data_asks_before_writing(capsys, tmp_path, monkeypatch):
    path = tmp_path / "clean.jsonl"  # nothing to fix, not classification: nothing would change
    path.write_text("".join(json.dumps({"prompt": f"tell story {i}\n\n###\n\n", "completion": f" once {i} END"})
                            + "\n" for i in range(8)))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, _ = prepare_data(capsys, path)
    assert code == 0 and "did not write the file" in out and f"-t \"{path}\"" in out
    assert prepared(tmp_path) == []
    code, out, _ = prepare_data(capsys, path, "-q")  # -q accepts it
    assert code == 0 and "unchanged" in out and prepared(tmp_path) == ["clean_prepared.jsonl"]
