"""The demo's table names the continued model by what keep_best registered, not by what was asked."""

from __future__ import annotations

from tunelab.cli.demo import _continued_name


def test_the_continued_column_says_which_epoch_was_kept():
    assert _continued_name(3, 3) == "1 + 3 epochs, shuffled"
    assert _continued_name(3, None) == "1 + 3 epochs, shuffled"  # no validation file: the last epoch
    assert _continued_name(3, 1) == "1 + 3 epochs, shuffled (kept epoch 1 of 3)"
    assert _continued_name(3, 0) == "1 + 3 epochs, shuffled (kept the 1-epoch weights)"
