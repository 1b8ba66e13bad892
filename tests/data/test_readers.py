"""Readers: every format, line numbers, and errors that name file, line and field."""

from __future__ import annotations

import gzip
import json

import pytest

from tunelab.data.readers import (
    Example,
    detect_classification,
    read_prompt_completion,
    read_table,
    validate_messages,
)
from tunelab.errors import DataFileError


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_jsonl_rows_keep_physical_lines_and_skip_blank_lines(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"a": 1}\n\n{"a": 2}\n   \n{"a": 3, "b": "x"}\n')
    table = read_table(path)
    assert table.format == "jsonl"
    assert table.lines == [1, 3, 5]
    assert table.columns == ["a", "b"]
    assert [r["a"] for r in table.rows] == [1, 2, 3]


def test_jsonl_with_bom_is_read(fixtures):
    table = read_table(fixtures / "prepare_bom.jsonl")
    assert len(table) == 30 and "prompt" in table.columns


def test_jsonl_reports_every_malformed_line_with_parser_message(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"a": 1}\n{"a": \n[1, 2]\n{"a": 2}\n{bad}\n')
    with pytest.raises(DataFileError) as err:
        read_table(path)
    text = err.value.render()
    assert "line 2: malformed JSON: Expecting value" in text
    assert "line 3: expected a JSON object" in text
    assert "line 5: malformed JSON" in text and "Expecting property name" in text
    assert str(path) in text


def test_malformed_line7_fixture(fixtures):
    with pytest.raises(DataFileError) as err:
        read_table(fixtures / "prepare_malformed_line7.jsonl")
    assert err.value.problems == ["line 7: malformed JSON: Expecting ',' delimiter (column 71)"]


def test_json_array_rows_know_their_line(tmp_path):
    path = write(tmp_path / "a.json", '[\n  {"a": 1},\n  {"a": 2,\n   "b": 3},\n  {"a": 4}\n]\n')
    table = read_table(path)
    assert table.lines == [2, 3, 5]
    assert table.rows[1] == {"a": 2, "b": 3}


def test_json_file_holding_json_lines_is_accepted(tmp_path):
    table = read_table(write(tmp_path / "a.json", '{"a": 1}\n{"a": 2}\n'))
    assert table.lines == [1, 2]


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', "single value"),
    ('[{"a": 1},\n {"a": }]', "malformed JSON at line 2"),
    ('[{"a": 1}, 3]', "line 1: expected a JSON object"),
])
def test_json_errors(tmp_path, text, expected):
    with pytest.raises(DataFileError) as err:
        read_table(write(tmp_path / "a.json", text))
    assert expected in err.value.render()


def test_csv_multiline_quoted_fields_give_start_lines(fixtures):
    table = read_table(fixtures / "clothing_reviews_tiny.csv")
    assert table.columns[0] == "Unnamed: 0"  # the unnamed index column gets pandas' name
    assert table.columns[1:4] == ["Clothing ID", "Age", "Title"]
    assert len(table) == 61
    assert table.lines[0] == 2
    # row 2 (index 1) has a line break inside its quoted review, so row 3 starts two lines later
    assert "\n" in table.rows[1]["Review Text"]
    assert table.lines[2] == table.lines[1] + 2
    assert all(isinstance(v, str) for v in table.rows[0].values())


def test_csv_field_count_problems_name_every_line(tmp_path):
    path = write(tmp_path / "a.csv", "prompt,completion\na,b\nc,d,e\nf\ng,h\n")
    with pytest.raises(DataFileError) as err:
        read_table(path)
    assert [p.split(":")[0] for p in err.value.problems] == ["line 3", "line 4"]


def test_tsv(tmp_path):
    table = read_table(write(tmp_path / "a.tsv", "prompt\tcompletion\nhello, world\t yes\n"))
    assert table.rows == [{"prompt": "hello, world", "completion": " yes"}]
    assert table.lines == [2]


def test_xlsx_made_with_pandas(tmp_path):
    import pandas as pd

    path = tmp_path / "a.xlsx"
    pd.DataFrame({"prompt": ["p1", "p2"], "completion": [" yes", 5]}).to_excel(path, index=False)
    table = read_table(path)
    assert table.format == "xlsx"
    assert table.lines == [2, 3]
    assert table.rows[1] == {"prompt": "p2", "completion": "5"}


def test_gzip_jsonl(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    assert [r["a"] for r in read_table(path).rows] == [1, 2]


def test_broken_gzip(tmp_path):
    with pytest.raises(DataFileError, match="cannot read"):
        read_table(write(tmp_path / "a.jsonl.gz", b"not gzip"))


def test_non_utf8_names_offset_and_line(fixtures):
    with pytest.raises(DataFileError) as err:
        read_table(fixtures / "non_utf8.csv")
    text = err.value.render()
    assert "not valid UTF-8" in text and "byte offset 46" in text and "(line 3)" in text
    assert "iconv" in text


@pytest.mark.parametrize("name, content, expected", [
    ("missing.jsonl", None, "no such file"),
    ("empty.jsonl", "", "is empty"),
    ("blank.csv", "\n\n", "is empty"),
    ("a.txt", "x", "cannot tell the file format"),
    ("a.xls", "x", "save it as .xlsx"),
])
def test_unusable_files(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataFileError) as err:
        read_table(path)
    assert expected in err.value.render()


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(DataFileError, match="directory"):
        read_table(tmp_path)


def test_read_prompt_completion_valid(tmp_path):
    path = write(tmp_path / "t.jsonl",
                 '{"prompt": "a ->", "completion": " x", "extra": 1}\n{"prompt": "", "completion": " y"}\n')
    assert read_prompt_completion(path) == [Example("a ->", " x", 1), Example("", " y", 2)]


def test_read_prompt_completion_reports_every_problem_with_file_line_and_field(tmp_path):
    rows = [{"prompt": "a", "completion": " x"}, {"prompt": "b"}, {"prompt": 3, "completion": " y"},
            {"prompt": "c", "completion": "  "}, {"completion": [" z"]}]
    path = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(path)
    assert err.value.problems == [
        f"{path}:2: field `completion` is missing",
        f"{path}:3: field `prompt` must be text, found int",
        f"{path}:4: field `completion` is empty",
        f"{path}:5: field `prompt` is missing",
        f"{path}:5: field `completion` must be text, found list",
    ]
    assert "prepare_data" in err.value.hint


def test_read_prompt_completion_reads_unknown_extension_as_jsonl(tmp_path):
    path = write(tmp_path / "file-abc123", '{"prompt": "a", "completion": " x"}\n')
    assert len(read_prompt_completion(path)) == 1


def test_many_problems_are_capped_but_counted(tmp_path):
    path = write(tmp_path / "t.jsonl", '{"prompt": "a"}\n' * 80)
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(path)
    assert len(err.value.problems) == 51
    assert err.value.problems[-1] == "... and 30 more"


@pytest.mark.parametrize("messages, expected", [
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], []),
    ([], ["must be a non-empty list"]),
    ("text", ["must be a non-empty list"]),
    ([{"role": "bot", "content": "hi"}], ["messages[0]`.role is 'bot'", "no assistant message"]),
    ([{"role": "assistant", "content": " "}], ["messages[0]`.content is empty"]),
    ([{"role": "assistant", "content": 5}], ["messages[0]`.content must be text"]),
    ([{"role": "user", "content": "hi", "weight": 1}, {"role": "assistant", "content": "a", "weight": 0.5}],
     ["messages[0]`.weight is only allowed on assistant", "messages[1]`.weight must be 0 or 1"]),
    ([{"role": "user", "content": "hi", "tone": "x"}, {"role": "assistant", "content": "a", "weight": 0}],
     ["unrecognized key(s) `tone`", "every one has weight 0"]),
    ([{"role": "user"}, {"role": "tool", "content": "x"}, {"content": "x"}, {"role": "assistant", "content": "a"}],
     ["messages[0]` has no `content`", "tool and function calls are not supported", "messages[2]` has no `role`"]),
    (["hi"], ["must be an object", "no assistant message"]),
])
def test_validate_messages(messages, expected):
    problems = validate_messages(messages)
    assert len(problems) == len(expected)
    for problem, fragment in zip(problems, expected):
        assert fragment in problem


@pytest.mark.parametrize("completions, expected", [
    ([], False),
    ([" a", " b", " a", " b", " a", " b", " a"], True),  # 2 distinct < 7/3
    ([" a", " b", " c", " a", " b", " c"], False),  # 3 distinct, not < 2
    ([" yes", "yes\n", " yes", " no", "no", " no", " no"], True),  # whitespace is not a new class
    ([f" {i}" for i in range(10)], False),
])
def test_detect_classification(completions, expected):
    assert detect_classification(completions) is expected


def test_a_raw_review_table_where_prompts_belong_names_the_build_command(tmp_path):
    """Amazon's dataset_en_test.json handed to evaluate or fine_tunes.create: one error that says how
    to build prompt/completion files, not a `prompt is missing` line per review."""
    from tunelab.data.readers import read_prompt_completion

    path = tmp_path / "dataset_en_test.json"
    path.write_text("".join(json.dumps({"review_id": f"en_{i}", "stars": 1 + i % 5, "review_body": "fine",
                                        "review_title": "ok", "product_category": "home"}) + "\n" for i in range(50)))
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(path)
    text = err.value.render()
    assert "no `prompt`/`completion` fields" in text and "`review_body`" in text
    # a command that runs when pasted (it read "--preset amazon-stars or --preset amazon-category"), then the other preset
    assert f"`tunelab datasets build {path} --preset amazon-stars --out data` (or --preset amazon-category)" in text
    assert len(err.value.problems or []) == 0
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"text": "a", "y": 1}) + "\n")
    with pytest.raises(DataFileError, match="--text COLUMN"):
        read_prompt_completion(other)


def test_csv_saved_as_json_gets_a_hint(tmp_path):
    path = write(tmp_path / "reviews.json", "review_title,review_body,stars\nGreat,Works well,5\n")
    with pytest.raises(DataFileError) as err:
        read_table(path)
    assert "malformed JSON at line 1" in err.value.message
    assert "looks like a CSV header" in err.value.render() and ".csv" in err.value.render()


def test_csv_saved_as_jsonl_gets_the_same_hint(tmp_path):
    """A CSV export named train.jsonl listed 'malformed JSON' for every line and said only that each
    line must hold a JSON object; now it says the file is CSV and to name it .csv."""
    path = write(tmp_path / "train.jsonl", "prompt,completion\nGreat dress ->, 5\nPoor fit ->, 1\n")
    with pytest.raises(DataFileError) as err:
        read_table(path)
    assert "3 line(s) cannot be read as JSON Lines" in err.value.message
    assert "looks like a CSV header ('prompt,completion')" in err.value.render() and ".csv" in err.value.render()


def test_a_preference_file_says_it_is_one(tmp_path):
    """QA: OpenAI's DPO format uploaded to /v1/files was called 'a table of raw reviews' with a
    `tunelab datasets build` command to run; it is a preference file, and tunelab trains supervised."""
    from tunelab.data.readers import read_prompt_completion

    path = tmp_path / "dpo.jsonl"
    row = {"input": {"messages": [{"role": "user", "content": "hi"}]},
           "preferred_output": [{"role": "assistant", "content": "hello"}],
           "non_preferred_output": [{"role": "assistant", "content": "go away"}]}
    path.write_text((json.dumps(row) + "\n") * 5)
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(path)
    text = err.value.render()
    assert "preference (DPO) file" in text and "supervised" in text and "datasets build" not in text


@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_file_says_so_and_how_to_convert(tmp_path, encoding, name):
    text = '{"stars": 5, "review_body": "Très bien 👍"}\n'
    bom = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    path = write(tmp_path / "dataset_en_train.json", bom + text.encode(encoding))
    with pytest.raises(DataFileError) as err:
        read_table(path)
    rendered = err.value.render()
    assert f"is {name} text" in rendered and f"iconv -f {name.lower()} -t utf-8" in rendered
    assert "latin1" not in rendered


@pytest.mark.parametrize("head, kind", [(b"\x89PNG\r\n\x1a\n\x00\x00", "a PNG image"),
                                        (b"%PDF-1.7\n%\xe2\xe3", "a PDF document"),
                                        (b"PK\x03\x04\x14\x00", "a ZIP archive")])
def test_a_binary_file_is_named_for_what_it_is_not_given_re_encoding_advice(tmp_path, head, kind):
    with pytest.raises(DataFileError) as exc:
        read_table(write(tmp_path / "train.jsonl", head + bytes(range(256))))
    assert f"train.jsonl is {kind}" in exc.value.render() and "iconv" not in exc.value.render()


def test_a_gzip_file_without_its_suffix_is_told_to_take_it(tmp_path):
    path = write(tmp_path / "train.jsonl", gzip.compress(b'{"prompt": "a", "completion": " b"}\n'))
    with pytest.raises(DataFileError, match="gzip-compressed") as exc:
        read_table(path)
    assert "….jsonl.gz" in exc.value.render()


def test_a_missing_file_is_both_unusable_input_and_not_found(tmp_path):
    """Python callers catch either; the CLI exits 3 for it, as for a missing path anywhere."""
    from tunelab.data.builder import build_dataset
    from tunelab.data.prepare import analyze
    from tunelab.errors import EXIT_NOT_FOUND, NotFoundError

    for call in (lambda p: read_table(p), lambda p: analyze(p), lambda p: build_dataset(p, out_dir=tmp_path / "out",
                                                                                          preset="amazon-stars")):
        with pytest.raises(DataFileError) as err:
            call(tmp_path / "missing.jsonl")
        assert isinstance(err.value, NotFoundError) and err.value.exit_code == EXIT_NOT_FOUND
