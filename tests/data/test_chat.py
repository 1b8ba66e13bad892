"""Chat-format data files (`{"messages": [...]}`): read for training, checked like OpenAI's format
checker with file lines, and prepared (classification found from the last assistant replies)."""

from __future__ import annotations

import json

import pytest

from tunelab.data import prepare
from tunelab.data.chat import transcript
from tunelab.data.readers import read_prompt_completion
from tunelab.errors import DataFileError


def chat(user: str, reply: str, system: str | None = "rate it", **extra) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": reply, **extra}]
    return {"messages": messages}


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_transcript_is_the_documented_fallback_template():
    messages = [{"role": "system", "content": "Rate it."}, {"role": "user", "content": "Lovely dress"},
                {"role": "assistant", "content": "5"}]
    assert transcript(messages[:2]) == "System:\nRate it.\n\nUser:\nLovely dress\n\nAssistant:\n"
    assert transcript(messages, add_generation_prompt=False).endswith("Assistant:\n5\n\n")


def test_chat_rows_read_as_prompt_and_last_learnt_reply(tmp_path):
    multi = {"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "one"},
                          {"role": "user", "content": "second"}, {"role": "assistant", "content": "two", "weight": 0},
                          {"role": "user", "content": "trailing question, nothing learnt after it"}]}
    path = jsonl(tmp_path / "chat.jsonl", [chat("great dress", "5"), multi])
    first, second = read_prompt_completion(path)
    assert first.completion == "5" and first.line == 1
    assert first.prompt == "System:\nrate it\n\nUser:\ngreat dress\n\nAssistant:\n"
    assert first.messages[-1] == {"role": "assistant", "content": "5"}
    # the label is the last assistant message that is learnt (weight 0 is not)
    assert second.completion == "one" and second.prompt == "User:\nfirst\n\nAssistant:\n"
    assert len(second.messages) == 5 and second.line == 2


def test_bad_chat_lines_are_all_reported_with_file_and_line(tmp_path):
    rows = [chat("ok", "4"), {"messages": [{"role": "user", "content": "no answer"}]},
            chat("x", "", system=None), chat("y", "3", weight=2),
            {"messages": [{"role": "assistant", "content": "a", "tool_calls": []}]},
            {"prompt": "a prompt/completion row", "completion": " 1"}]
    path = jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(path)
    problems = "\n".join(err.value.problems)
    assert f"{path}:2: field `messages` has no assistant message to learn from" in problems
    assert f"{path}:3: field `messages[1]`.content is empty" in problems
    assert f"{path}:4: field `messages[2]`.weight must be 0 or 1, got 2" in problems
    assert f"{path}:5: field `messages[0]`: tool and function calls are not supported" in problems
    assert f"{path}:6: field `messages` is missing" in problems
    assert ":1:" not in problems and "is not a valid chat file" in err.value.message



def test_tool_definitions_beside_text_messages_are_refused_not_dropped(tmp_path):
    """A row of OpenAI's format with a `tools` array (or legacy `functions`) and text-only messages
    was read with the tools dropped as an unknown key: the model learnt its replies without the tool
    definitions the data gave it. Now each such line is named; `parallel_tool_calls` alone changes
    nothing a text model learns and is still read."""
    tools = [{"type": "function", "function": {"name": "get_size", "parameters": {"type": "object"}}}]
    rows = [{**chat("ok", "4"), "parallel_tool_calls": False},
            {**chat("a", "1"), "tools": tools, "parallel_tool_calls": False},
            {**chat("b", "2"), "functions": [{"name": "get_size", "parameters": {}}]}]
    path = jsonl(tmp_path / "tools.jsonl", rows)
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(path)
    assert err.value.problems == [
        f"{path}:2: field `tools`: tool definitions are not supported by tunelab (the model would be trained "
        "without them); remove the key",
        f"{path}:3: field `functions`: tool definitions are not supported by tunelab (the model would be trained "
        "without them); remove the key"]
    with pytest.raises(DataFileError) as err:
        prepare.analyze(path)
    assert any("line 2: field `tools`" in p for p in err.value.problems)
    assert [e.completion for e in read_prompt_completion(jsonl(tmp_path / "ok.jsonl", rows[:1]))] == ["4"]


def test_a_chat_row_in_a_prompt_completion_file_is_named(tmp_path):
    path = jsonl(tmp_path / "mixed.jsonl", [{"prompt": "a", "completion": " 1"}, chat("b", "2")])
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(path)
    assert err.value.problems == [f"{path}:2: is a chat example (`messages`), but the file's first row is "
                                  "prompt/completion; use one format per file"]


def test_prepare_data_finds_chat_classification_and_splits_by_reply(tmp_path):
    rows = [chat(f"review number {i} words", str(1 + i % 5)) for i in range(50)]
    analysis = prepare.analyze(jsonl(tmp_path / "stars.jsonl", rows))
    assert analysis.kind == prepare.CHAT and analysis.classification
    assert "The last assistant replies form 5 labels" in "\n".join(f.message for f in analysis.findings)
    data = prepare.apply_actions(analysis.data, analysis.actions)
    assert prepare.classes(data) == ["1", "2", "3", "4", "5"]
    split = prepare.plan_split(data, seed=1)
    assert split.stratified and len(split.valid) == 10
    assert sorted(prepare.replies(split.valid)) == sorted(["1", "2", "3", "4", "5"] * 2)
    train, valid = prepare.write_prepared(tmp_path / "stars.jsonl", data, split)
    assert len(read_prompt_completion(train)) == 40 and len(read_prompt_completion(valid)) == 10


def test_prepare_data_refuses_invalid_chat_rows_with_lines(tmp_path):
    path = jsonl(tmp_path / "c.jsonl", [chat("a", "1"), {"messages": [{"role": "bot", "content": "hi"}]}])
    with pytest.raises(DataFileError) as err:
        prepare.analyze(path)
    assert err.value.problems == ["line 2: field `messages[0]`.role is 'bot'; expected one of system, user, assistant "
                                  "(or developer, read as system)",
                                  "line 2: field `messages` has no assistant message to learn from"]


def test_prepare_data_counts_examples_without_a_system_or_user_message(tmp_path):
    rows = [chat(f"review {i}", f"reply number {i}") for i in range(6)] + [chat("no system here", "ok", system=None)]
    analysis = prepare.analyze(jsonl(tmp_path / "c.jsonl", rows))
    found = [f for f in analysis.findings if "without a" in f.message]
    assert [(f.message, f.rows, f.warning) for f in found] == [
        ("There is 1 example without a system message. These are rows: [7]", (7,), True)]


def test_text_parts_are_joined_and_other_parts_refused(tmp_path):
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "great "}, {"type": "text", "text": "dress"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": "5"}]}]}
    (row,) = read_prompt_completion(jsonl(tmp_path / "parts.jsonl", [parts]))
    assert row.prompt == "User:\ngreat dress\n\nAssistant:\n" and row.completion == "5"
    analysis = prepare.analyze(tmp_path / "parts.jsonl")
    assert analysis.data["messages"].iloc[0][0] == {"role": "user", "content": "great dress"}
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                          {"role": "assistant", "content": "5"}]}
    with pytest.raises(DataFileError) as err:
        read_prompt_completion(jsonl(tmp_path / "image.jsonl", [image]))
    assert "messages[0]`.content: only text parts" in err.value.problems[0]


def test_a_developer_message_trains_as_the_system_message_it_is_served_as(tmp_path):
    row = {"messages": [{"role": "developer", "content": "Rate the review."}, {"role": "user", "content": "Great"},
                        {"role": "assistant", "content": "5"}]}
    (example,) = read_prompt_completion(jsonl(tmp_path / "d.jsonl", [row]))
    assert example.messages[0]["role"] == "system"
    assert example.prompt == transcript([{"role": "system", "content": "Rate the review."},
                                         {"role": "user", "content": "Great"}])
