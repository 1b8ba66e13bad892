"""Plots draw Chinese and Japanese labels with an installed CJK font, not as boxes; without one,
a single warning (not one per character) says what to install."""

from __future__ import annotations

import warnings

import pytest

from tunelab.evaluation import fonts
from tunelab.evaluation.plots import plot_confusion_matrix

MATRIX = [[5, 1, 0], [2, 7, 1], [0, 1, 9]]
CJK_LABELS = ["家具", "キッチン用品", "toys"]


def _plot(labels, path) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert plot_confusion_matrix(MATRIX, labels, path) == path and path.stat().st_size > 0
    return list(caught)


def test_cjk_labels_are_drawn_with_an_installed_cjk_font(tmp_path):
    if not fonts.system_cjk_fonts():
        pytest.skip("no CJK font installed (scripts/setup.sh test installs fonts-wqy-microhei)")
    caught = _plot(CJK_LABELS, tmp_path / "cm.png")
    assert [str(w.message) for w in caught] == []  # matplotlib warns for every glyph it cannot draw
    assert fonts.cjk_families()


def test_a_cjk_font_matplotlibs_cached_list_lacks_is_found_on_first_need(tmp_path, monkeypatch):
    """matplotlib's font list is cached on disk: a font installed after it was built is not in it."""
    from matplotlib import font_manager

    if not fonts.system_cjk_fonts():
        pytest.skip("no CJK font installed (scripts/setup.sh test installs fonts-wqy-microhei)")
    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [f for f in font_manager.fontManager.ttflist if f.name not in fonts.CJK_FAMILIES])
    monkeypatch.setattr(fonts, "_scanned", False)
    assert fonts.cjk_families() == []
    assert [str(w.message) for w in _plot(CJK_LABELS, tmp_path / "cm.png")] == []
    assert fonts.cjk_families()


def test_without_a_cjk_font_one_warning_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(fonts, "CJK_FAMILIES", ())  # as on a machine with no CJK font
    monkeypatch.setattr(fonts, "_scanned", False)
    caught = _plot(CJK_LABELS, tmp_path / "cm.png")
    assert len(caught) == 1 and issubclass(caught[0].category, fonts.MissingGlyphsWarning)
    assert "fonts-noto-cjk" in str(caught[0].message) and "cm.png" in str(caught[0].message)


def test_latin_labels_need_no_font_search(tmp_path, monkeypatch):
    def no_search():
        raise AssertionError("searched the system's fonts for a plot without CJK text")

    monkeypatch.setattr(fonts, "_register_system_cjk_fonts", no_search)
    assert _plot(["1", "2", "3"], tmp_path / "cm.png") == []
