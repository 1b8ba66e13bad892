"""Printed tables line up with Chinese and Japanese labels: they are padded and cut by terminal
columns (two per CJK character), not by characters."""

from __future__ import annotations

from tunelab import textwidth
from tunelab.cli.common import clip, clip_middle, format_columns
from tunelab.evaluation.report import format_table


def test_columns_count_wide_and_zero_width_characters():
    assert textwidth.columns("stars") == 5
    assert textwidth.columns("家具") == 4
    assert textwidth.columns("cafe\u0301") == 4  # e + combining acute accent
    assert textwidth.columns("a\tb") == 3  # a control character counts as one, as len did


def test_padding_and_cutting_by_columns():
    assert textwidth.ljust("家具", 6) == "家具  "
    assert textwidth.rjust("家具", 6) == "  家具"
    assert clip("キッチン用品", 7) == "キッチ…"  # 6 columns of text, then the ellipsis
    assert textwidth.columns(clip("キッチン用品", 8)) <= 8
    assert clip("kitchen", 7) == "kitchen" and clip("kitchens", 7) == "kitche…"
    cut = clip_middle("ft-家具家具家具-20261127", 14)
    assert textwidth.columns(cut) <= 14 and cut.startswith("ft-") and cut.endswith("1127")


def _column_starts(lines: list[str], word: str) -> set[int]:
    """The terminal column where `word` starts on each line holding it."""
    return {textwidth.columns(line[: line.index(word)]) for line in lines if word in line}


def test_evaluate_table_lines_up_with_cjk_labels():
    table = format_table(["label", "precision", "recall"],
                         [["家具", "0.812", "0.790"], ["キッチン", "0.700", "0.650"], ["toys", "0.500", "0.400"]])
    lines = table.splitlines()
    # The right-aligned columns end in the same terminal column on every row.
    ends = {textwidth.columns(line) for line in lines if not set(line) <= {"-", " "}}
    assert len(ends) == 1


def test_list_columns_line_up_with_cjk_labels():
    text = format_columns(["LABEL", "N", "NOTE"], [["家具", "12", "ok"], ["キッチン用品", "3", "rare"],
                                                   ["toys", "140", "ok"]], right=frozenset({1}))
    lines = text.splitlines()
    assert len(_column_starts(lines, "ok") | _column_starts(lines, "rare") | _column_starts(lines, "NOTE")) == 1
