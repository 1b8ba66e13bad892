"""Hostile data files (issue 15): deep nesting, numbers Python cannot hold, invalid UTF-8, NUL bytes,
lone surrogates and rows of 10 MB are clear errors naming the file, the line and the field, from
every reader (read_table, the training reader, prepare_data, fine_tunes.create), never a traceback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

GOOD = '{"prompt": "fine fits\\n\\n###\\n\\n", "completion": " 1"}'

# name -> (line 2 of the file, as bytes; words the message must hold)
HOSTILE = {
    "deep nesting": (b'{"prompt": ' + b"[" * 20_000 + b"]" * 20_000 + b', "completion": " 1"}', "nested more than 64"),
    "nesting past the limit": (b'{"prompt": ' + b"[" * 80 + b"]" * 80 + b', "completion": " 1"}',
                               "field `prompt`: nested more than 64"),
    "huge float": (b'{"prompt": 1e999999, "completion": " 1"}', "field `prompt`: the number 1e999999 is out of range"),
    "10,000-digit int": (b'{"prompt": ' + b"7" * 10_000 + b', "completion": " 1"}',
                         "field `prompt`: an integer of 10000 digits"),
    "NaN": (b'{"prompt": "x", "completion": NaN}', "field `completion`: NaN is not a JSON number"),
    "lone surrogate": (b'{"prompt": "a\\ud800b", "completion": " 1"}', "field `prompt`: holds a lone UTF-16 surrogate"),
    "invalid UTF-8": (b'{"prompt": "caf\xe9", "completion": " 1"}', "is not valid UTF-8"),
    "NUL byte": (b'{"prompt": "a\x00b", "completion": " 1"}', "holds a NUL byte"),
    "10 MB line": (b'{"prompt": "' + b"x" * 10_000_000 + b'", "completion": " 1"}', "characters long"),
}


@pytest.fixture(params=sorted(HOSTILE), ids=lambda name: name.replace(" ", "-"))
def hostile(request, tmp_path):
    line, words = HOSTILE[request.param]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + line + b"\n" + GOOD.encode() + b"\n")
    return path, words


def test_every_reader_names_the_line(hostile):
    from tunelab.data.prepare import load
    from tunelab.data.readers import read_prompt_completion, read_table
    from tunelab.errors import DataFileError

    path, words = hostile
    for read in (read_table, read_prompt_completion, load):
        with pytest.raises(DataFileError) as excinfo:
            read(path)
        message = excinfo.value.render()
        assert str(path) in message and "line 2" in message and words in message, (read.__name__, message)
        assert len(message) < 2000  # a summary, not the 10 MB line echoed back


def test_the_commands_report_it_without_a_traceback(hostile, capsys, tunelab_home):
    path, words = hostile
    assert run_cli("tools", "fine_tunes.prepare_data", "-f", path, "-q") == 2
    err = capsys.readouterr().err
    assert "line 2" in err and words in err and "Traceback" not in err
    assert run_cli("api", "fine_tunes.create", "-t", path, "-m", "ada", "--no_follow") == 2
    err = capsys.readouterr().err
    assert "line 2" in err and words in err and "Traceback" not in err


def test_json_arrays_and_csv_too(tmp_path):
    from tunelab.data.readers import read_table
    from tunelab.errors import DataFileError

    cases = {
        "deep.json": (b'[{"prompt": "a", "completion": " 1"},\n {"prompt": ' + b"[" * 5000 + b"]" * 5000
                      + b', "completion": " 1"}]', "line 2: nested more than 64"),
        "huge.json": (b'[{"prompt": "a", "completion": " 1"},\n {"prompt": 1e400, "completion": " 1"}]',
                      "line 2: field `prompt`: the number 1e400 is out of range"),
        "nul.csv": (b"prompt,completion\na,1\nb\x00c,2\n", "line 3 holds a NUL byte"),
        "long.csv": (b"prompt,completion\na,1\n" + b"x" * 2_000_000 + b",2\n",
                     "line 3: the row is 2,000,001 characters"),
        "utf16.jsonl": (GOOD.encode("utf-16-le"), "NUL byte"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataFileError) as excinfo:
            read_table(path)
        assert words in excinfo.value.render(), (name, excinfo.value.render())


def test_limits_leave_ordinary_data_alone(tmp_path):
    from tunelab.data import safejson
    from tunelab.data.readers import read_table

    row = {"prompt": "caf\u00e9 \U0001F600 " + "word " * 1000, "completion": " 1", "n": 10**30, "x": 1.5e300,
           "nested": [[[{"ok": [1, 2]}]]], "nul": "a\u0000b"}
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert read_table(path).rows == [row]
    assert safejson.loads(json.dumps(row)) == row
    assert safejson.loads(b"\xef\xbb\xbf" + json.dumps(row).encode()) == row  # a BOM, as json.loads(bytes) takes it
