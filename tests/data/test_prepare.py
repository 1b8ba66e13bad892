"""The prepare_data checks as library functions: findings, actions and their effect."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tunelab.data import prepare
from tunelab.errors import DataFileError, TunelabError

SEP = "\n\n###\n\n"
# Distinct first words, so no common-prefix action gets in the way of the check under test.
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]


def jsonl(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def keys(analysis) -> list[str]:
    return [a.key for a in analysis.actions]


def messages(analysis) -> str:
    return "\n".join(f.message for f in analysis.findings)


def run_all(analysis):
    return prepare.apply_actions(analysis.data, analysis.actions)


def generation_rows(n=12, **override):
    rows = [{"prompt": f"{WORDS[i]} is a thing{SEP}", "completion": f" {WORDS[i]} described at length.\n"}
            for i in range(n)]
    for row in rows:
        row.update(override)
    return rows


def test_clean_classification_has_no_actions_but_a_split(fixtures):
    analysis = prepare.analyze(fixtures / "prepare_clean_classification.jsonl")
    assert analysis.actions == []
    assert analysis.classification
    assert "classification" in messages(analysis)
    assert "All prompts end with suffix `\\n\\n###\\n\\n`" in messages(analysis)
    split = prepare.plan_split(analysis.data, seed=42)
    assert split is not None and split.stratified
    assert (len(split.train), len(split.valid)) == (48, 12)
    assert Counter(split.valid["completion"]) == {" positive": 4, " negative": 4, " neutral": 4}


def test_duplicates_are_reported_by_file_line(fixtures):
    analysis = prepare.analyze(fixtures / "prepare_duplicates.jsonl")
    dup = next(a for a in analysis.actions if a.key == "drop_duplicates")
    assert dup.rows == (4, 9, 11)
    assert "There are 3 duplicated prompt-completion sets. These are rows: [4, 9, 11]" in messages(analysis)
    assert dup.message.startswith("Remove 3 duplicate rows")
    data = run_all(analysis)
    assert len(data) == 12 and 4 not in data.index


def test_missing_separator_gets_the_preferred_one(fixtures):
    analysis = prepare.analyze(fixtures / "prepare_no_separator.jsonl")
    action = next(a for a in analysis.actions if a.key == "add_separator")
    assert "\\n\\n###\\n\\n" in action.message
    assert all(p.endswith(SEP) for p in run_all(analysis)["prompt"])


def test_separator_falls_back_when_the_preferred_one_occurs_in_a_prompt(tmp_path):
    rows = [{"prompt": f"q{i}", "completion": f" answer number {i}\n"} for i in range(6)]
    rows[2]["prompt"] = f"q{SEP}inside"
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    action = next(a for a in analysis.actions if a.key == "add_separator")
    assert "\\n\\n===\\n\\n" in action.message


def test_no_usable_separator_is_a_warning(tmp_path):
    rows = [{"prompt": WORDS[i] + "".join(prepare.SEPARATORS) + WORDS[i + 1], "completion": f" {WORDS[i]} text\n"}
            for i in range(4)]
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    assert "add_separator" not in keys(analysis)
    assert any(f.warning and "already occurs" in f.message for f in analysis.findings)


def test_common_suffix_that_is_only_punctuation_is_no_separator(tmp_path):
    rows = [{"prompt": f"Sentence {i}.", "completion": f" reply {i} here\n"} for i in range(5)]
    assert "add_separator" in keys(prepare.analyze(jsonl(tmp_path, rows)))


def test_separator_appearing_inside_prompts_is_warned(tmp_path):
    rows = [{"prompt": f"a{i} ->", "completion": f" x {i}\n"} for i in range(5)]
    rows[1]["prompt"] = "a -> b ->"
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    warning = next(f for f in analysis.findings if f.warning and "also appears inside" in f.message)
    assert warning.rows == (2,)


def test_leading_space_added(fixtures):
    analysis = prepare.analyze(fixtures / "prepare_no_leading_space.jsonl")
    action = next(a for a in analysis.actions if a.key == "add_leading_space")
    assert action.rows == tuple(range(1, 13))
    assert all(c.startswith(" ") and not c.startswith("  ") for c in run_all(analysis)["completion"])


def test_stop_sequence_newline_preferred_then_END(tmp_path):
    rows = [{"prompt": f"p{i}{SEP}", "completion": f" text number {i}"} for i in range(6)]
    action = next(a for a in prepare.analyze(jsonl(tmp_path, rows)).actions if a.key == "add_stop")
    assert "`\\n`" in action.message
    rows = [{"prompt": f"p{i}{SEP}", "completion": f" {WORDS[i]} one\nline {i}"} for i in range(6)]
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    action = next(a for a in analysis.actions if a.key == "add_stop")
    assert "` END`" in action.message
    assert all(c.endswith(" END") for c in run_all(analysis)["completion"])


def test_no_stop_sequence_for_classification(fixtures):
    assert "add_stop" not in keys(prepare.analyze(fixtures / "prepare_clean_classification.jsonl"))


def test_lowercase_when_over_a_third_upper_case(tmp_path):
    rows = [{"prompt": f"{WORDS[i].upper()} IS LOUD{SEP}", "completion": f" {WORDS[i]} is calm\n"} for i in range(5)]
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    assert "lowercase_prompt" in keys(analysis) and "lowercase_completion" not in keys(analysis)
    assert all(p == p.lower() for p in run_all(analysis)["prompt"])


def test_long_examples_dropped_with_the_character_proxy_explained(tmp_path):
    rows = generation_rows(5)
    rows[3]["completion"] = " " + "x" * prepare.MAX_EXAMPLE_CHARS + "\n"
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    action = next(a for a in analysis.actions if a.key == "drop_long")
    assert action.rows == (4,)
    finding = next(f for f in analysis.findings if f.rows == (4,))
    assert "8000 characters" in finding.message and "2048 tokens" in finding.message


def test_empty_completions_are_a_necessary_drop(tmp_path):
    rows = generation_rows(5)
    rows[1]["completion"] = ""
    rows[2]["completion"] = "   "
    del rows[4]["completion"]
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    action = analysis.actions[0]
    assert action.key == "drop_empty" and action.necessary and action.label == "[Necessary]"
    assert action.rows == (2, 3, 5)


def test_empty_prompts_are_a_recommended_drop_by_file_line(tmp_path):
    rows = generation_rows(6)
    rows[0]["prompt"] = ""
    rows[3]["prompt"] = "  "
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    action = next(a for a in analysis.actions if a.key == "drop_empty_prompts")
    assert not action.necessary and action.rows == (1, 4)
    assert action.message == "Remove 2 rows with empty prompts"
    finding = next(f for f in analysis.findings if f.rows == (1, 4))
    assert "2 examples with an empty prompt" in finding.message and "rows: [1, 4]" in finding.message
    # The others' separator is recognised, not replaced by a new one.
    assert "add_separator" not in keys(analysis)
    assert f"All prompts end with suffix `{prepare.show(SEP)}`" in messages(analysis)
    assert len(run_all(analysis)) == 4


def test_declining_the_empty_prompt_drop_keeps_the_separator(tmp_path):
    rows = generation_rows(4)
    rows[2]["prompt"] = ""
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    kept = [a for a in analysis.actions if a.key != "drop_empty_prompts"]
    data = prepare.apply_actions(analysis.data, kept)
    assert list(data["prompt"]) == [r["prompt"] for r in rows]
    assert prepare.prompt_separator(data["prompt"]) == SEP
    assert any(f"`{prepare.show(SEP)}`" in note for note in prepare.usage_notes(data))


def test_all_prompts_empty_is_generation_not_a_problem(tmp_path):
    rows = generation_rows(4, prompt="")
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    assert "drop_empty_prompts" not in keys(analysis)
    assert "All prompts are empty" in messages(analysis)


def test_extra_columns_dropped(tmp_path):
    rows = generation_rows(4, source="web", id=1)
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    assert analysis.actions[0].key == "drop_columns"
    assert "`source`, `id`" in analysis.actions[0].message
    assert list(run_all(analysis).columns) == ["prompt", "completion"]


def test_common_prefixes_removed_on_word_boundaries(tmp_path):
    rows = [{"prompt": f"Classify: {WORDS[i]} review{SEP}", "completion": f" Label: {w}"}
            for i, w in enumerate(["good", "bad"] * 5)]
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    assert {"strip_prompt_prefix", "strip_completion_prefix"} <= set(keys(analysis))
    data = run_all(analysis)
    assert data["prompt"].iloc[0] == f"alpha review{SEP}"
    assert set(data["completion"]) == {" good", " bad"}  # the leading space survives


def test_no_prefix_removed_inside_a_word(tmp_path):
    rows = [{"prompt": f"{w} text {i}{SEP}", "completion": f" x{i % 2}"}
            for i, w in enumerate(["positive", "possible"] * 3)]
    analysis = prepare.analyze(jsonl(tmp_path, rows))
    assert "strip_prompt_prefix" not in keys(analysis)


def test_few_examples_warning(fixtures):
    analysis = prepare.analyze(fixtures / "prepare_duplicates.jsonl")
    warning = next(f for f in analysis.findings if "We recommend at least" in f.message)
    assert warning.warning and "12 examples" in warning.message


def test_numbers_become_text_and_lists_are_unusable(tmp_path):
    analysis = prepare.analyze(jsonl(tmp_path, [{"prompt": 1, "completion": 2}, {"prompt": "a", "completion": " b"}]))
    assert list(analysis.data["prompt"]) == ["1", "a"]
    assert "2 prompt/completion values are numbers" in messages(analysis)
    with pytest.raises(DataFileError, match="line 2: field `prompt` must be text"):
        prepare.analyze(jsonl(tmp_path, [{"prompt": "a", "completion": " b"}, {"prompt": ["a"], "completion": " b"}]))


def test_no_rows_left_is_an_error(tmp_path):
    analysis = prepare.analyze(jsonl(tmp_path, [{"prompt": "a", "completion": ""}, {"prompt": "b", "completion": " "}]))
    with pytest.raises(DataFileError, match="No rows are left"):
        prepare.apply_actions(analysis.data, analysis.actions)


def test_chat_file_checks(fixtures, tmp_path):
    analysis = prepare.analyze(fixtures / "chat_messages.jsonl")
    assert analysis.kind == prepare.CHAT and analysis.actions == []
    rows = [json.loads(line) for line in (fixtures / "chat_messages.jsonl").read_text().splitlines()]
    rows.append(rows[0])
    rows[1]["source"] = "x"
    assert keys(prepare.analyze(jsonl(tmp_path, rows))) == ["drop_columns", "drop_duplicates"]


def test_invalid_chat_reports_every_line(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            {"messages": [{"role": "user", "content": "hi"}]},
            {"messages": [{"role": "robot", "content": ""}, {"role": "assistant", "content": "ok"}]}]
    with pytest.raises(DataFileError) as err:
        prepare.analyze(jsonl(tmp_path, rows))
    lines = [p.split(":")[0] for p in err.value.problems]
    assert lines == ["line 2", "line 3", "line 3"]


def test_split_is_seeded_and_falls_back_without_stratification(fixtures, tmp_path):
    data = prepare.analyze(fixtures / "prepare_clean_classification.jsonl").data
    a, b, c = (prepare.plan_split(data, seed=s) for s in (1, 1, 2))
    assert list(a.valid.index) == list(b.valid.index) != list(c.valid.index)
    rows = [{"prompt": f"p{i}{SEP}", "completion": [" a", " b", " c", " d", " e"][i % 5]} for i in range(20)]
    split = prepare.plan_split(prepare.analyze(jsonl(tmp_path, rows)).data)
    assert not split.stratified and "split is random" in split.note and len(split.valid) <= 4
    assert set(split.valid["completion"]) <= set(split.train["completion"])


def test_a_single_example_class_stays_in_training_and_the_rest_is_stratified(tmp_path):
    """A class seen once (a rare product category) in validation only would make fine_tunes.create
    refuse the pair it suggests."""
    rows = [{"prompt": f"p{i}{SEP}", "completion": [" a", " b"][i % 2]} for i in range(40)]
    rows += [{"prompt": f"q{i}{SEP}", "completion": f" rare{i}"} for i in range(3)]
    for seed in range(5):
        split = prepare.plan_split(prepare.analyze(jsonl(tmp_path, rows)).data, seed=seed)
        assert split.stratified and "3 class(es) have a single example" in split.note
        assert {" rare0", " rare1", " rare2"} <= set(split.train["completion"])
        assert sorted(split.valid["completion"]) == [" a"] * 4 + [" b"] * 4
        assert len(split.train) + len(split.valid) == 43


def test_validation_is_capped_at_1000(tmp_path):
    rows = [{"prompt": f"p{i}{SEP}", "completion": [" a", " b"][i % 2]} for i in range(6000)]
    split = prepare.plan_split(prepare.analyze(jsonl(tmp_path, rows)).data)
    assert len(split.valid) == 1000


def test_no_split_for_generation(fixtures):
    assert prepare.plan_split(prepare.analyze(fixtures / "prepare_duplicates.jsonl").data) is None


@pytest.mark.parametrize("name, split, expected", [
    ("data.jsonl", False, ["data_prepared.jsonl"]),
    ("data.csv", True, ["data_prepared_train.jsonl", "data_prepared_valid.jsonl"]),
    ("my.data.jsonl.gz", False, ["my.data_prepared.jsonl"]),
    ("sheet.XLSX", False, ["sheet_prepared.jsonl"]),
])
def test_output_paths(tmp_path, name, split, expected):
    assert [p.name for p in prepare.output_paths(tmp_path / name, split)] == expected
    assert all(p.parent == tmp_path for p in prepare.output_paths(tmp_path / name, split))


def test_next_command(tmp_path):
    train, valid = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    assert prepare.next_command(train, None, None, "m") == f'tunelab api fine_tunes.create -t "{train}" -m m'
    assert prepare.next_command(train, valid, [" a", " b", " c"]).endswith(
        f'-v "{valid}" -m ada --compute_classification_metrics --classification_n_classes 3')
    assert prepare.next_command(train, valid, [" no", " yes"]).endswith(
        '--compute_classification_metrics --classification_positive_class " yes"')
    assert prepare.next_command(train, valid, [' say "x"', ' tell "y"']).endswith(
        """--classification_positive_class ' say "x"'""")


def test_write_prepared_is_all_or_nothing(fixtures, tmp_path, monkeypatch):
    src = tmp_path / "d.jsonl"
    src.write_bytes((fixtures / "prepare_clean_classification.jsonl").read_bytes())
    data = prepare.analyze(src).data
    split = prepare.plan_split(data)
    calls = []

    def flaky(part):
        calls.append(part)
        if len(calls) == 2:
            raise OSError("disk full")
        return [{"prompt": "p", "completion": " c"}] * len(part)

    monkeypatch.setattr(prepare, "_records", flaky)
    with pytest.raises(TunelabError, match="disk full"):
        prepare.write_prepared(src, data, split)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


@pytest.mark.parametrize("suffix, marker", [
    (").\n\n###\n\n", "\n\n###\n\n"),
    ("ing ->", " ->"),
    (" Sentiment:", " Sentiment:"),
    ("\n", "\n"),
    (".", ""),
    (" is here", ""),
    ("", ""),
])
def test_marker_in_a_common_suffix(suffix, marker):
    assert prepare._marker(suffix, prepare.SEPARATORS) == marker
