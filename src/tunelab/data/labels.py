"""Label helpers shared by training, evaluation and the server."""

from __future__ import annotations

from collections.abc import Sequence


def label_sort_key(label: str):
    """Numbers in numeric order (` 2` before ` 10`), then text labels alphabetically."""
    text = str(label).strip()
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def preview(labels: Sequence[str], n: int = 8) -> str:
    """A short, quoted list for error messages (leading spaces stay visible in the quotes)."""
    shown = ", ".join(repr(label) for label in labels[:n])
    return shown + (f", … ({len(labels)} in all)" if len(labels) > n else "")
