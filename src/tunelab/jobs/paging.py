"""Cursor pagination as OpenAI's list endpoints do it: `after` is the id of the last item of the
previous page (exclusive), `limit` the page size, and the answer says whether more follow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tunelab.errors import InvalidInputError

T = TypeVar("T")


def page(items: Sequence[T], *, after: str | None = None, limit: int | None = None,
         key: Callable[[T], Any] = lambda item: item.id, unknown: str = "No item {after}") -> tuple[list[T], bool]:
    """(the page, whether there is more). Items fetched with one row beyond `limit` page the same
    way. An `after` that names no item is an InvalidInputError (`unknown`, formatted with it), so a
    client with a stale cursor is told instead of silently getting the first page again."""
    items = list(items)
    if after is not None:
        keys = [key(item) for item in items]
        if after not in keys:
            raise InvalidInputError(unknown.format(after=after) + " (the `after` cursor).")
        items = items[keys.index(after) + 1:]
    if limit is not None and len(items) > limit:
        return items[:limit], True
    return items, False
