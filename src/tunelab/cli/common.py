"""Small helpers shared by CLI modules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunelab import textwidth
from tunelab.errors import NotFoundError


def add_command(sub, name: str, func, help: str, **kwargs) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help, **kwargs)
    parser.set_defaults(func=func)
    return parser


def require_paths(*given: tuple[str, str | None]) -> None:
    """NotFoundError (exit 3) naming the first (what, path) whose path does not exist; None skips.

    The readers below the CLI report a missing file as one more unusable input (exit 2); checking
    first keeps the README's promise that a missing path exits 3, whichever command reads it."""
    for what, path in given:
        if path is not None and not Path(path).exists():
            raise NotFoundError(f"The {what} {path} does not exist.")


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask y/n on a terminal; with -q, or with no terminal to ask on, accept."""
    if assume_yes or not sys.stdin.isatty():
        return True
    try:
        answer = input(f"{question} [Y/n]: ").strip().lower()
    except EOFError:
        return True
    return answer in ("", "y", "yes")


TABLE_WIDTH = 100
"""Short views (`--table`) fit in this many columns."""


def clip(text: str, width: int = TABLE_WIDTH) -> str:
    """`text` cut to `width` terminal columns, ending in … when cut."""
    return textwidth.clip(str(text), width)


def clip_middle(text: str, width: int) -> str:
    """`text` cut in the middle (ids keep their start and their date at the end)."""
    return textwidth.clip_middle(str(text), width)


def format_columns(header: list[str], rows: list[list[str]], *, width: int = TABLE_WIDTH,
                   right: frozenset[int] = frozenset(), cut_middle: bool = True) -> str:
    """Columns separated by two spaces, at most `width` wide: the last column is cut when a row
    would be wider, in the middle (ids keep their date) or, with cut_middle=False, at the end
    (text). `right`: indexes of right-aligned columns."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(textwidth.columns(r[i]) for r in [header, *rows]) for i in range(len(header))]
    room = width - sum(widths[:-1]) - 2 * (len(widths) - 1)
    widths[-1] = max(textwidth.columns(header[-1]), min(widths[-1], room))
    lines = []
    for row in [header, *rows]:
        cells = [(clip_middle if cut_middle else clip)(c, widths[i]) for i, c in enumerate(row)]
        cells = [textwidth.rjust(c, widths[i]) if i in right else textwidth.ljust(c, widths[i])
                 for i, c in enumerate(cells)]
        lines.append(clip("  ".join(cells).rstrip(), width))
    return "\n".join(lines)
