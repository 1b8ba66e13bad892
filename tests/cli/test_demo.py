"""`tunelab demo` states a measured duration only for the setting that was measured."""

from __future__ import annotations

import argparse

import pytest

from tunelab.cli import demo


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.register(parser.add_subparsers())
    return parser.parse_args(["demo", *argv])


@pytest.mark.parametrize("argv, measured", [
    ([], True),
    (["-m", "minilm-l6"], True),
    (["--seed", "7", "--out", "x"], True),
    (["--train-size", "150"], False),
    (["--val-size", "2000"], False),
    (["--full"], False),
    (["--continue-epochs", "1"], False),
    (["-m", "smollm2-135m"], False),
])
def test_the_cost_line_only_for_the_measured_setting(argv, measured):
    assert demo._measured_setting(_args(argv)) is measured
