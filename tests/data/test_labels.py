"""Every label rule of tunelab.data.labels, on the cases the chapter's data produces: star ratings
written as completions with a leading space (" 1".." 5"), binary yes/no and sentiment words, and
category names."""

from __future__ import annotations

import pytest

from tunelab.data import labels as L
from tunelab.errors import InvalidInputError

STARS = [" 1", " 2", " 3", " 4", " 5"]


# --- writing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("label, expected", [
    (" 4", "4"), ("4", "4"), (" yes\n", "yes"), ("\t Dresses  ", "Dresses"), (" ", ""), (5, "5"),
])
def test_normalize_label_drops_surrounding_whitespace_only(label, expected):
    assert L.normalize_label(label) == expected


def test_normalize_label_keeps_inner_spaces():
    assert L.normalize_label(" General Petite ") == "General Petite"


@pytest.mark.parametrize("value, expected", [
    (5, "5"), (5.0, "5"), ("5.0", "5"), (" 4 ", "4"), ("-1", "-1"), (4.5, "4.5"), ("Tops", "Tops"),
    ("", None), ("  ", None), (None, None), (float("nan"), None), ("12345678901234567890", "12345678901234567890"),
])
def test_format_label(value, expected):
    assert L.format_label(value) == expected


def test_format_label_keeps_booleans_as_text():
    assert L.format_label(True) == "True"


@pytest.mark.parametrize("completion, has_space, written", [
    ("4", False, " 4"), (" 4", True, " 4"), ("\n4", True, "\n4"), ("yes", False, " yes"), ("", False, " "),
])
def test_leading_space(completion, has_space, written):
    assert L.has_leading_space(completion) is has_space
    assert L.with_leading_space(completion) == written


def test_with_leading_space_adds_exactly_one_space():
    assert L.with_leading_space(L.with_leading_space("5")) == " 5"
    assert L.COMPLETION_PREFIX == " "


# --- ordering and display -------------------------------------------------------------------------


def test_label_sort_key_puts_numbers_first_in_numeric_order():
    assert sorted([" 10", " 2", " 1"], key=L.label_sort_key) == [" 1", " 2", " 10"]
    assert sorted(["10", "2"], key=L.label_sort_key) == ["2", "10"]  # not "10" < "2" as text
    assert sorted([" b", " 10", " a", " 2"], key=L.label_sort_key) == [" 2", " 10", " a", " b"]
    assert sorted(list(reversed(STARS)), key=L.label_sort_key) == STARS
    assert sorted([" negative", " positive", " neutral"], key=L.label_sort_key) == [
        " negative", " neutral", " positive"]
    assert sorted([" 1.5", " 1", " -2"], key=L.label_sort_key) == [" -2", " 1", " 1.5"]


def test_sort_labels_numeric_only_when_every_label_is_a_number():
    assert L.sort_labels(["10", "2", "1"]) == ["1", "2", "10"]
    assert L.sort_labels(["b", "10", "a"]) == ["10", "a", "b"]
    assert L.sort_labels(["10", "2", "n/a"]) == ["10", "2", "n/a"]  # mixed: text order
    assert L.sort_labels(["2.5", "-1", ".5"]) == ["-1", ".5", "2.5"]
    assert L.sort_labels([]) == []
    assert L.sort_labels(iter(["3", "1"])) == ["1", "3"]


@pytest.mark.parametrize("label, shown", [
    (" 4", "␣4"), ("4", "4"), ("  Dresses ", "␣␣Dresses␣"), ("\n", "\\n"), (" ", "␣"), (" yes\n", "␣yes\\n"),
    ("a\tb", "a\\tb"), ("General Petite", "General Petite"),
])
def test_display_label_shows_spaces(label, shown):
    assert L.display_label(label) == shown


def test_preview_quotes_labels_and_cuts_long_lists():
    assert L.preview([" 1", " 2"]) == "' 1', ' 2'"
    long = [f" {i}" for i in range(1, 11)]
    assert L.preview(long, 3) == "' 1', ' 2', ' 3', … (10 in all)"


# --- ordinal labels -----------------------------------------------------------------------------


def test_ordinal_values():
    assert L.ordinal_values(STARS) == [1, 2, 3, 4, 5]
    assert L.ordinal_values([" 1", " 2", "3"]) == [1, 2, 3]
    assert L.ordinal_values([" 10", " 2"]) == [10, 2]  # in the given order
    assert L.ordinal_values([" -1", "+2 "]) == [-1, 2]
    assert L.ordinal_values([" 1", " 2.5"]) is None
    assert L.ordinal_values(["Dresses", "Tops"]) is None
    assert L.ordinal_values([" 1", " positive"]) is None  # mixed
    assert L.ordinal_values([" 1_0"]) is None
    assert L.ordinal_values([]) is None


def test_is_ordinal():
    assert L.is_ordinal(STARS)
    assert L.is_ordinal([str(i) for i in range(1, 11)])
    assert not L.is_ordinal([" positive", " negative"])
    assert not L.is_ordinal([])


def test_is_star_rating():
    assert L.is_star_rating(STARS)
    assert L.is_star_rating([" 4", " 5"])
    assert not L.is_star_rating([str(i) for i in range(1, 11)])
    assert not L.is_star_rating([" 0", " 1"])
    assert not L.is_star_rating([" yes", " no"])
    assert not L.is_star_rating([])


def test_default_threshold():
    assert L.default_threshold(STARS) == 3
    assert L.default_threshold([str(i) for i in range(1, 11)]) == 5
    assert L.default_threshold(["1", "10"]) == 5
    assert L.default_threshold([" 0", " 1"]) == 0
    assert L.default_threshold(["x"]) is None


def test_good_vs_bad_of_five_stars():
    assert L.good_vs_bad(STARS) == {" 1": False, " 2": False, " 3": False, " 4": True, " 5": True}
    assert L.good_vs_bad(STARS, 2) == {" 1": False, " 2": False, " 3": True, " 4": True, " 5": True}
    assert L.good_vs_bad(STARS, 3.5) == L.good_vs_bad(STARS, 3)


def test_good_vs_bad_of_ten_point_scale():
    ten = [str(i) for i in range(1, 11)]
    split = L.good_vs_bad(ten)
    assert [label for label in ten if not split[label]] == ["1", "2", "3", "4", "5"]
    assert [label for label in ten if split[label]] == ["6", "7", "8", "9", "10"]


def test_good_vs_bad_needs_ordinal_labels():
    with pytest.raises(InvalidInputError, match="integer labels"):
        L.good_vs_bad([" positive", " negative"])


# --- matching names to labels -------------------------------------------------------------------


@pytest.mark.parametrize("labels, expected", [
    ([" no", " yes"], " yes"),
    ([" 0", " 1"], " 1"),
    ([" negative", " positive"], " positive"),
    ([" FALSE", " TRUE"], " TRUE"),
    ([" cat", " dog"], " cat"),  # no positive-sounding class: first in sorted order, like the legacy tool
    ([" a", " b", " c"], None),
    ([" yes"], None),
])
def test_positive_class(labels, expected):
    assert L.positive_class(labels) == expected


@pytest.mark.parametrize("name, expected", [
    ("yes", " yes"), (" yes", " yes"), ("yes ", " yes"), ("4", " 4"), (" 4", " 4"), ("4\n", " 4"),
])
def test_find_label_ignores_surrounding_whitespace(name, expected):
    assert L.find_label(name, [" no", " yes", " 4"]) == expected


def test_find_label_prefers_the_exact_label():
    assert L.find_label("yes", [" yes", "yes"]) == "yes"
    assert L.find_label(" yes", [" yes", "yes"]) == " yes"


def test_find_label_returns_none_for_no_or_several_fits():
    assert L.find_label("maybe", [" no", " yes"]) is None
    assert L.find_label("Yes", [" no", " yes"]) is None  # case matters: labels are tokens
    assert L.find_label("4", [" 1", " 2"]) is None
    assert L.find_label("yes", [" yes", "yes "]) is None


def test_match_label_names_the_positive_class():
    assert L.match_label("yes", [" no", " yes"], what="positive class") == " yes"
    assert L.match_label(" yes", [" no", " yes"]) == " yes"
    assert L.match_label(" 1", ["0", "1"]) == "1"


def test_match_label_raises_a_typed_error_naming_the_labels():
    with pytest.raises(InvalidInputError, match="positive class 'maybe' is not one of the labels") as err:
        L.match_label("maybe", [" no", " yes"], what="positive class")
    assert "' no', ' yes'" in err.value.message
    assert err.value.exit_code == 2
    with pytest.raises(InvalidInputError, match="fits several labels"):
        L.match_label("yes", [" yes", "yes "])


def test_whitespace_variants_groups_labels_that_differ_only_in_whitespace():
    assert L.whitespace_variants([" 4", "4", " 5", "5\n", " 3", " 4"]) == [[" 4", "4"], [" 5", "5\n"]]
    assert L.whitespace_variants([" 1", " 2", "yes", "Yes"]) == []
