"""Terminal columns of text, for the plain-text tables tunelab prints. A Chinese or Japanese
character takes two columns and a combining accent none (wcwidth, the Unicode tables terminals
use), so padding and cutting by `len` would push every column after such a label out of line."""

from __future__ import annotations

from wcwidth import wcswidth, wcwidth


def columns(text: str) -> int:
    """How many terminal columns `text` takes."""
    n = wcswidth(text)
    # A control character has no width of its own (-1): count it as one, as `len` did.
    return n if n >= 0 else sum(w if w >= 0 else 1 for w in map(wcwidth, text))


def ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - columns(text))


def rjust(text: str, width: int) -> str:
    return " " * max(0, width - columns(text)) + text


def head(text: str, width: int) -> str:
    """The longest start of `text` that fits in `width` columns."""
    used = 0
    for i, ch in enumerate(text):
        used += columns(ch)
        if used > width:
            return text[:i]
    return text


def tail(text: str, width: int) -> str:
    """The longest end of `text` that fits in `width` columns."""
    used = 0
    for i in range(len(text) - 1, -1, -1):
        used += columns(text[i])
        if used > width:
            return text[i + 1:]
    return text


def clip(text: str, width: int) -> str:
    """`text` cut to `width` columns, ending in … when cut."""
    return text if columns(text) <= width else head(text, max(0, width - 1)) + "…"


def clip_middle(text: str, width: int) -> str:
    """`text` cut in the middle to `width` columns (ids keep their start and their date at the end)."""
    if columns(text) <= width:
        return text
    start = head(text, (width - 1) // 2)
    return start + "…" + tail(text, width - 1 - columns(start))
